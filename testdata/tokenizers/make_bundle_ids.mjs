// Makes the reference ids of the tokenizer inside
// ../models/litertlm_test_hf_tokenizer.litertlm (LiteRT-LM's test bundle:
// one HF_Tokenizer_Zlib section, an 8-byte little-endian uncompressed size
// and a zlib stream of a tokenizer.json) with Hugging Face's Tokenizers.js,
// as make_hf.mjs makes the others (same npm packages, same NODE_PATH):
//   NODE_PATH=/tmp/hfref/node_modules node make_bundle_ids.mjs
// Writes litertlm_test_hf_tokenizer.{strings,botchan}.ids. CI does not rerun it.
import fs from "node:fs";
import zlib from "node:zlib";
const { Tokenizer } = await import(process.env.NODE_PATH + "/@huggingface/tokenizers/dist/tokenizers.mjs");

const file = fs.readFileSync("../models/litertlm_test_hf_tokenizer.litertlm");
// The only section starts at the first 16 KiB boundary after the header.
const sec = file.subarray(16384);
const size = Number(sec.readBigUInt64LE(0));
const json = zlib.inflateSync(sec.subarray(8), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
if (json.length !== size) throw new Error(`inflated ${json.length} bytes, the prefix says ${size}`);
const tok = new Tokenizer(JSON.parse(json.toString("utf8")), {});
const lines = (f, n) => {
	const all = fs.readFileSync(f, "utf8").split("\n");
	if (all[all.length - 1] === "") all.pop();
	return n ? all.slice(0, n) : all;
};
for (const [set, text] of Object.entries({ strings: lines("strings.txt"), botchan: lines("botchan.txt", 400) })) {
	const out = text.map((s) => tok.encode(s, { add_special_tokens: false }).ids.join(" "));
	fs.writeFileSync(`litertlm_test_hf_tokenizer.${set}.ids`, out.join("\n") + "\n");
}

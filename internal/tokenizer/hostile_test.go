package tokenizer

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pb builds protobuf messages for the tests.
type pb []byte

func (b pb) varint(x uint64) pb {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}
func (b pb) key(num, typ int) pb { return b.varint(uint64(num<<3 | typ)) }
func (b pb) bytes(num int, s []byte) pb {
	return append(b.key(num, wireLen).varint(uint64(len(s))), s...)
}
func (b pb) str(num int, s string) pb  { return b.bytes(num, []byte(s)) }
func (b pb) uint(num int, x uint64) pb { return b.key(num, wireVarint).varint(x) }
func (b pb) f32(num int, f float32) pb {
	return binary.LittleEndian.AppendUint32(b.key(num, wireI32), math.Float32bits(f))
}
func piece(s string, score float32, typ PieceType) []byte {
	return pb(nil).str(1, s).f32(2, score).uint(3, uint64(typ))
}

// model is a small valid unigram model; extra fields are appended.
func model(extra ...[]byte) []byte {
	b := pb(nil).bytes(1, piece("<unk>", 0, Unknown)).bytes(1, piece("<s>", 0, Control)).
		bytes(1, piece("\u2581a", -1, Normal)).bytes(1, piece("a", -2, Normal)).bytes(1, piece("b", -3, Normal))
	for _, e := range extra {
		b = append(b, e...)
	}
	return b
}

func trainer(fields pb) []byte    { return pb(nil).bytes(2, fields) }
func normalizer(fields pb) []byte { return pb(nil).bytes(3, fields) }

func charsmapBlob(trieBytes uint32, rest []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, trieBytes), rest...)
}

func TestSentencePieceHostile(t *testing.T) {
	if _, err := ParseSentencePiece(model(), "ok.model"); err != nil {
		t.Fatalf("the valid base model: %v", err)
	}
	leafOut := binary.LittleEndian.AppendUint32(nil, 1<<8) // unit 0 has a leaf at 0^0 = itself: value 256
	leafOut = binary.LittleEndian.AppendUint32(leafOut, 0)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no pieces"},
		{"text", []byte("hello world, not a model"), "SentencePiece model"},
		{"truncated", model()[:20], "says 12 bytes, 2 are left"},
		{"length past the end", pb(nil).key(1, wireLen).varint(1000), "1000 bytes, 0 are left"},
		{"group", pb(nil).key(1, 3), "wire type 3"},
		{"field zero", pb(nil).key(0, wireVarint).varint(1), "field number 0"},
		{"long varint", append(pb(nil).key(7, wireVarint), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "varint"},
		{"pieces as varint", pb(nil).uint(1, 5), "pieces (field 1) has wire type 0"},
		{"score as varint", pb(nil).bytes(1, pb(nil).str(1, "x").uint(2, 1)), "piece 0: byte 3: score (field 2)"},
		{"empty piece", model(pb(nil).bytes(1, piece("", 0, Normal))), "piece 5 is empty"},
		{"duplicate", model(pb(nil).bytes(1, piece("a", 0, Normal))), `piece 5 ("a") is defined twice`},
		{"second unk", model(pb(nil).bytes(1, piece("<unk2>", 0, Unknown))), "both the unknown piece"},
		{"no unk", pb(nil).bytes(1, piece("a", 0, Normal)), "no unknown piece"},
		{"bad type", model(pb(nil).bytes(1, piece("c", 0, 9))), "unknown type 9"},
		{"nan score", model(pb(nil).bytes(1, piece("c", float32(math.NaN()), Normal))), "score NaN"},
		{"invalid utf8 piece", model(pb(nil).bytes(1, piece("\xff", 0, Normal))), "not valid UTF-8"},
		{"byte piece without fallback", model(pb(nil).bytes(1, piece("<0x41>", 0, Byte))), "byte_fallback is off"},
		{"bad byte piece", model(trainer(pb(nil).uint(35, 1)), pb(nil).bytes(1, piece("<0xZZ>", 0, Byte))), "not <0x00>"},
		{"missing bytes", model(trainer(pb(nil).uint(35, 1)), pb(nil).bytes(1, piece("<0x41>", 0, Byte))), "only 1 of the 256 byte pieces"},
		{"word model", model(trainer(pb(nil).uint(3, modelWord))), "model type WORD"},
		{"unknown model type", model(trainer(pb(nil).uint(3, 77))), "unknown model type 77"},
		{"charsmap too short", model(normalizer(pb(nil).bytes(2, []byte{1, 0}))), "too short"},
		{"charsmap trie past the end", model(normalizer(pb(nil).bytes(2, charsmapBlob(4096, make([]byte, 16))))), "trie of 4096 bytes"},
		{"charsmap odd trie", model(normalizer(pb(nil).bytes(2, charsmapBlob(6, make([]byte, 16))))), "multiple of 4"},
		{"charsmap leaf past the strings", model(normalizer(pb(nil).str(1, "x").bytes(2, charsmapBlob(8, append(leafOut, 'a', 0))))), "replacement at byte 256 of 2"},
		{"charsmap string without NUL", model(normalizer(pb(nil).bytes(2, charsmapBlob(8, append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 1<<10|1<<8), 0), 'a', 'b'))))), "not NUL-ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSentencePiece(tc.data, "bad.model")
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bad.model: ") {
				t.Fatalf("error %q, want it to name the file and say %q", err, tc.want)
			}
		})
	}
}

func TestHFHostile(t *testing.T) {
	defer func(n int) { inflateLimit = n }(inflateLimit)
	inflateLimit = 1 << 20
	good, err := os.ReadFile(filepath.Join(testdir, "hf_gpt2_1024.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	for _, tc := range []struct {
		name, json, want string
	}{
		{"not json", "{", "unexpected EOF"},
		{"wordpiece", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`, `model type "WordPiece"`},
		{"no vocab", `{"model": {"type": "BPE"}}`, "no vocabulary"},
		{"negative id", `{"model": {"type": "BPE", "vocab": {"a": -1}}}`, "id -1"},
		{"duplicate id", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}}`, "both have id 0"},
		{"merge not in vocab", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}`, `"ab" is not in the vocabulary`},
		{"bad merge", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}}`, "not two tokens"},
		{"bad merge pair", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}`, "neither"},
		{"unk not in vocab", `{"model": {"type": "BPE", "vocab": {"a": 0}, "unk_token": "<unk>"}}`, "unk_token"},
		{"dropout", `{"model": {"type": "BPE", "vocab": {"a": 0}, "dropout": 0.1}}`, "dropout"},
		{"normalizer", strings.Replace(s, `"normalizer":null`, `"normalizer":{"type":"Lowercase"}`, 1), "only NFC, NFKC, NFD, NFKD, Prepend, Replace"},
		{"whitespace pre-tokenizer", strings.Replace(s, `"pre_tokenizer":{"type":"ByteLevel"`, `"pre_tokenizer":{"type":"Whitespace"`, 1), `"Whitespace": only ByteLevel`},
		{"metaspace scheme", strings.Replace(s, `"pre_tokenizer":{"type":"ByteLevel"`, `"pre_tokenizer":{"type":"Metaspace","prepend_scheme":"sometimes"`, 1), `prepend_scheme "sometimes"`},
		{"regex replace", strings.Replace(s, `"normalizer":null`, `"normalizer":{"type":"Replace","pattern":{"Regex":" +"},"content":" "}`, 1), "Replace of a string"},
		{"other regex", `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}, "model": {"type": "BPE", "vocab": {"a": 0}}}`, "only the GPT-2, Llama 3 and Qwen 2 patterns"},
		{"single word", strings.Replace(s, `"single_word":false`, `"single_word":true`, 1), "single_word"},
		{"truncated gzip", string(gz(good)[:100]), "compressed tokenizer: unexpected EOF"},
		{"zlib of junk", string(zl([]byte("not a tokenizer"))), "SentencePiece model"},
		{"zlib bomb", string(zl(make([]byte, 1<<20+1))), "inflates to more than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json), "bad.json")
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bad.json: ") {
				t.Fatalf("error %q, want it to name the file and say %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: no input makes the parsers panic, and a tokenizer they accept
// encodes text into ids below its vocabulary size.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"spm_unigram_user.model", "spm_bpe_identity.model", "spm_unigram_identity_bytes.model", "hf_gpt2_1024_prefix.json", "hf_llama2_style_1024.json"} {
		b, err := os.ReadFile(filepath.Join(testdir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "Hello <mask> wörld 😀 ab")
	}
	f.Add(model(normalizer(pb(nil).bytes(2, charsmapBlob(8, []byte{0, 2, 0, 0, 0, 1, 0, 0, 'x', 0})))), "ab")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		tok, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		for _, id := range tok.Encode(text) {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d outside [0, %d)", id, tok.VocabSize())
			}
		}
	})
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zl(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// A zlib-compressed tokenizer.json (as a bundle stores it) reads as the
// plain file.
func TestZlibTokenizer(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(testdir, "hf_gpt2_1024.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Parse(good, "plain")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(zl(good), "zlib")
	if err != nil {
		t.Fatal(err)
	}
	if x, y := a.Encode("Hello world"), b.Encode("Hello world"); !slices.Equal(x, y) || len(x) == 0 {
		t.Errorf("plain %v, zlib %v", x, y)
	}
}

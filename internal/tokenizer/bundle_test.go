package tokenizer

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/litertlm"
)

// TestBundleHFTokenizer reads the tokenizer.json in LiteRT-LM's test
// bundle (an HF_Tokenizer_Zlib section: a byte-level BPE of 49152 ids with
// a Digits pre-tokenizer) and encodes strings.txt and botchan.txt as
// Tokenizers.js encodes them with the same tokenizer.json
// (make_bundle_ids.mjs), but for lines with a non-ASCII number: the Digits
// pre-tokenizer isolates what Rust's char::is_numeric takes (Hugging
// Face's tokenizers, which LiteRT-LM runs; so does this package), and
// Tokenizers.js only ASCII digits (JavaScript's \d); TestSplitDigits
// checks those.
func TestBundleHFTokenizer(t *testing.T) {
	b, err := litertlm.Open("../../testdata/models/litertlm_test_hf_tokenizer.litertlm")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tok, name, err := FromBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if tok == nil || !strings.HasSuffix(name, "section 0 (HF_Tokenizer_Zlib)") || tok.VocabSize() != 49152 {
		t.Fatalf("got %v %q", tok, name)
	}
	for _, set := range []struct {
		file  string
		limit int
	}{{"strings", 0}, {"botchan", 400}} {
		lines := readLines(t, filepath.Join(testdir, set.file+".txt"), set.limit)
		want := readIDs(t, filepath.Join(testdir, "litertlm_test_hf_tokenizer."+set.file+".ids"))
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines, %d id lines", set.file, len(lines), len(want))
		}
		bad, skipped := 0, 0
		for i, l := range lines {
			if strings.IndexFunc(l, func(r rune) bool { return r > 0x7f && isN(r) }) >= 0 {
				skipped++
				continue
			}
			if got := tok.Encode(l); !slices.Equal(got, want[i]) {
				if bad++; bad <= 3 {
					t.Errorf("%s line %d %q:\ngot  %v\nwant %v", set.file, i+1, l, got, want[i])
				}
			}
		}
		if bad > 0 || skipped > 2 {
			t.Errorf("%s: %d of %d lines differ (%d skipped)", set.file, bad, len(lines), skipped)
		}
	}
}

type section struct {
	typ  litertlm.SectionType
	data []byte
}

// bundleWith writes a bundle of the sections and opens it.
func bundleWith(t *testing.T, secs ...section) *litertlm.Bundle {
	t.Helper()
	var ns []litertlm.NewSection
	for _, s := range secs {
		ns = append(ns, litertlm.NewSection{Type: s.typ, Data: s.data})
	}
	path := filepath.Join(t.TempDir(), "t.litertlm")
	if err := litertlm.Create(t.Context(), path, nil, ns); err != nil {
		t.Fatal(err)
	}
	b, err := litertlm.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestBundleSPAndStartToken reads an SP_Tokenizer section and the start
// token of an LlmMetadataProto section (packed and unpacked ids), and
// refuses HF sections whose size prefix lies.
func TestBundleSPAndStartToken(t *testing.T) {
	spm, err := os.ReadFile(filepath.Join(testdir, "spm_bpe_identity.model"))
	if err != nil {
		t.Fatal(err)
	}
	// start_token {token_ids {ids: [2]}} packed, max_num_tokens 64.
	meta := []byte{0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0x02, 0x28, 0x40}
	if got := litertlm.LlmMetadata(2, 64); !bytes.Equal(got, meta) {
		t.Errorf("LlmMetadata(2, 64) = % x, want % x", got, meta)
	}
	b := bundleWith(t, section{litertlm.TypeSPTokenizer, spm},
		section{litertlm.TypeLlmMetadataProto, meta})
	tok, name, err := FromBundle(b)
	if err != nil || tok == nil || !strings.Contains(name, "SP_Tokenizer") {
		t.Fatalf("%v %q %v", tok, name, err)
	}
	ref := loadTest(t, filepath.Join(testdir, "spm_bpe_identity.model"))
	if s := "Hello world, 123"; !slices.Equal(tok.Encode(s), ref.Encode(s)) {
		t.Errorf("bundle's SentencePiece encodes differently from the file's")
	}
	if id, ok, err := StartToken(b); id != 2 || !ok || err != nil {
		t.Errorf("start token %d %v %v, want 2", id, ok, err)
	}
	for _, tc := range []struct {
		meta []byte
		id   int
		ok   bool
		err  string
	}{
		{litertlm.LlmMetadata(300, 0), 300, true, ""},
		{litertlm.LlmMetadata(-1, 128), 0, false, ""},
		{[]byte{0x0a, 0x04, 0x0a, 0x02, 0x08, 0x07}, 7, true, ""},              // unpacked id 7
		{[]byte{0x0a, 0x05, 0x12, 0x03, 'B', 'O', 'S'}, 0, false, ""},          // token_str
		{[]byte{0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0x02, 0x03}, 0, false, ""}, // two ids
		{[]byte{0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x05, 0x02}, 0, false, "bytes"},  // length past the end
		{[]byte{0x08, 0x01}, 0, false, "start_token"},                          // wrong wire type
	} {
		b := bundleWith(t, section{litertlm.TypeLlmMetadataProto, tc.meta})
		id, ok, err := StartToken(b)
		if id != tc.id || ok != tc.ok || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("% x: got %d %v %v, want %d %v %q", tc.meta, id, ok, err, tc.id, tc.ok, tc.err)
		}
	}
	js, err := os.ReadFile(filepath.Join(testdir, "hf_gpt2_1024.json"))
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(js)
	zw.Close()
	for _, tc := range []struct {
		size uint64
		err  string
	}{{uint64(len(js)), ""}, {uint64(len(js)) + 1, "size prefix says"}, {1 << 30, "more than"}} {
		sec := binary.LittleEndian.AppendUint64(nil, tc.size)
		b := bundleWith(t, section{litertlm.TypeHFTokenizerZlib, append(sec, z.Bytes()...)})
		tok, _, err := FromBundle(b)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) || err == nil && tok.VocabSize() != 1024 {
			t.Errorf("size %d: %v, want %q", tc.size, err, tc.err)
		}
	}
}

// TestSplitDigits: the Digits pre-tokenizer isolates every character Rust's
// char::is_numeric takes (general categories Nd, Nl, No), one by one or in
// runs.
func TestSplitDigits(t *testing.T) {
	in := "ab 123 ١٢ ½ⅷ① x9"
	if got, want := splitDigits(in, true), []string{"ab ", "1", "2", "3", " ", "١", "٢", " ", "½", "ⅷ", "①", " x", "9"}; !slices.Equal(got, want) {
		t.Errorf("individual: %q, want %q", got, want)
	}
	if got, want := splitDigits(in, false), []string{"ab ", "123", " ", "١٢", " ", "½ⅷ①", " x", "9"}; !slices.Equal(got, want) {
		t.Errorf("runs: %q, want %q", got, want)
	}
}

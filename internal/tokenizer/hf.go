package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// HF is a Hugging Face tokenizer.json with a BPE model over byte-level
// pre-tokenisation (GPT-2, RoBERTa, Llama 3, Qwen style): added tokens are
// cut out of the text first, the rest is split by the GPT-2 pattern, each
// piece's UTF-8 bytes are written as the 256 printable characters of the
// byte-level alphabet, and merged by the merges' ranks (the lowest rank
// first, the leftmost among equals).
type HF struct {
	vocab   map[string]int
	ranks   map[[2]string]int
	added   []addedToken // longest content first
	size    int
	unk     int // -1: none
	prefix  bool
	ignore  bool
	splitFn func(string) []string
	norm    []func(string) string // the normaliser's steps, in order
	// byteLevel: words are written in the byte-level alphabet; else
	// their symbols are Unicode characters (SentencePiece-style BPE).
	byteLevel bool
	// metaspace is the Metaspace pre-tokenizer (nil: none).
	metaspace *metaspace
	// byteFallback writes a symbol missing from the vocabulary as its
	// UTF-8 bytes' <0xXX> tokens; fuseUnk makes a run of unknown symbols
	// one unknown id.
	byteFallback, fuseUnk bool
}

// metaspace is a Metaspace pre-tokenizer: spaces become Replacement,
// which is put before the text (PrependScheme "always", or "first" for
// the text's first part only), and with Split each word starting with it
// is a word of its own.
type metaspace struct {
	Replacement   string `json:"replacement"`
	PrependScheme string `json:"prepend_scheme"`
	Split         bool   `json:"split"`
}

type addedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	LStrip  bool   `json:"lstrip"`
	RStrip  bool   `json:"rstrip"`
	Single  bool   `json:"single_word"`
}

type hfFile struct {
	AddedTokens  []addedToken    `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        struct {
		Type                    string          `json:"type"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		ByteFallback            bool            `json:"byte_fallback"`
		FuseUnk                 bool            `json:"fuse_unk"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Dropout                 *float64        `json:"dropout"`
	} `json:"model"`
}

type hfComponent struct {
	Type           string          `json:"type"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	PreTokenizers  []hfComponent   `json:"pretokenizers"`
	Pattern        json.RawMessage `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	Replacement    *string         `json:"replacement"`
	PrependScheme  *string         `json:"prepend_scheme"`
	Split          *bool           `json:"split"`
}

// The split patterns this package implements by hand (Go's regexp has no
// look-ahead, which both use).
const (
	gpt2Pattern  = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Prefix = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen 2's is Llama 3's with single digits.
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// ParseHF reads a tokenizer.json. What is not supported (another model
// type, a normaliser, a split pattern other than GPT-2's or Llama 3's,
// BPE dropout, byte fallback, subword prefixes) is refused by name, not
// approximated.
func ParseHF(data []byte, name string) (*HF, error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s: tokenizer.json: %s", name, fmt.Sprintf(format, a...))
	}
	var f hfFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, errf("%v", err)
	}
	if f.Model.Type != "BPE" {
		return nil, errf("model type %q: only BPE is supported", f.Model.Type)
	}
	nf, err := hfNormalizer(f.Normalizer)
	if err != nil {
		return nil, errf("%v", err)
	}
	if f.Model.Dropout != nil && *f.Model.Dropout > 0 {
		return nil, errf("BPE dropout %g: only deterministic BPE is supported", *f.Model.Dropout)
	}
	if p := f.Model.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, errf("continuing_subword_prefix %q is not supported", *p)
	}
	if p := f.Model.EndOfWordSuffix; p != nil && *p != "" {
		return nil, errf("end_of_word_suffix %q is not supported", *p)
	}
	t := &HF{vocab: f.Model.Vocab, ranks: map[[2]string]int{}, unk: -1, ignore: f.Model.IgnoreMerges, norm: nf,
		byteFallback: f.Model.ByteFallback, fuseUnk: f.Model.FuseUnk}
	if len(t.vocab) == 0 {
		return nil, errf("the model has no vocabulary")
	}
	ids := map[int]string{}
	for tok, id := range t.vocab {
		if id < 0 {
			return nil, errf("token %q has id %d", tok, id)
		}
		if other, dup := ids[id]; dup {
			return nil, errf("tokens %q and %q both have id %d", other, tok, id)
		}
		ids[id] = tok
		t.size = max(t.size, id+1)
	}
	if f.Model.UnkToken != nil {
		id, ok := t.vocab[*f.Model.UnkToken]
		if !ok {
			return nil, errf("unk_token %q is not in the vocabulary", *f.Model.UnkToken)
		}
		t.unk = id
	}
	merges, err := parseMerges(f.Model.Merges)
	if err != nil {
		return nil, errf("model.merges: %v", err)
	}
	if len(merges) > 1<<24 {
		return nil, errf("%d merges: more than 2^24, whose ranks this reader keeps exactly", len(merges))
	}
	for r, m := range merges {
		if _, ok := t.vocab[m[0]+m[1]]; !ok {
			return nil, errf("merge %d (%q %q): %q is not in the vocabulary", r, m[0], m[1], m[0]+m[1])
		}
		if _, dup := t.ranks[m]; !dup {
			t.ranks[m] = r
		}
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" || a.ID < 0 {
			return nil, errf("added token %d %q: empty or negative", a.ID, a.Content)
		}
		if a.Single {
			return nil, errf("added token %q: single_word is not supported", a.Content)
		}
		t.added = append(t.added, a)
		t.size = max(t.size, a.ID+1)
	}
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].Content) > len(t.added[j].Content) })
	if err := t.preTokenizer(f.PreTokenizer); err != nil {
		return nil, errf("pre_tokenizer: %v", err)
	}
	return t, nil
}

// hfNormalizer reads the normaliser: none, a Unicode normal form (NFC,
// NFKC, NFD, NFKD: golang.org/x/text's tables), Prepend, Replace of a
// literal string, or a Sequence of these.
func hfNormalizer(raw json.RawMessage) ([]func(string) string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c struct {
		Type        string
		Normalizers []json.RawMessage
		Prepend     *string
		Pattern     *struct{ String, Regex *string }
		Content     *string
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("normalizer: %v", err)
	}
	forms := map[string]norm.Form{"NFC": norm.NFC, "NFKC": norm.NFKC, "NFD": norm.NFD, "NFKD": norm.NFKD}
	if f, ok := forms[c.Type]; ok {
		return []func(string) string{f.String}, nil
	}
	switch {
	case c.Type == "Sequence":
		var out []func(string) string
		for _, n := range c.Normalizers {
			steps, err := hfNormalizer(n)
			if err != nil {
				return nil, err
			}
			out = append(out, steps...)
		}
		return out, nil
	case c.Type == "Prepend" && c.Prepend != nil:
		p := *c.Prepend
		return []func(string) string{func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		}}, nil
	case c.Type == "Replace" && c.Pattern != nil && c.Pattern.String != nil && *c.Pattern.String != "" && c.Content != nil:
		from, to := *c.Pattern.String, *c.Content
		return []func(string) string{func(s string) string { return strings.ReplaceAll(s, from, to) }}, nil
	}
	return nil, fmt.Errorf("normalizer %s: only NFC, NFKC, NFD, NFKD, Prepend, Replace of a string and Sequences of them are supported", short(raw))
}

func short(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// parseMerges reads merges written as "a b" strings or as ["a", "b"]
// pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(items))
	for i, it := range items {
		var s string
		if json.Unmarshal(it, &s) == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", i, s)
			}
			out = append(out, [2]string{a, b})
			continue
		}
		var p []string
		if err := json.Unmarshal(it, &p); err != nil || len(p) != 2 || p[0] == "" || p[1] == "" {
			return nil, fmt.Errorf("merge %d is neither \"a b\" nor [\"a\", \"b\"]", i)
		}
		out = append(out, [2]string{p[0], p[1]})
	}
	return out, nil
}

// preTokenizer accepts ByteLevel (with or without its GPT-2 split), alone
// or after a Split by the GPT-2 or Llama 3 pattern.
func (t *HF) preTokenizer(raw json.RawMessage) error {
	var c hfComponent
	if len(raw) == 0 || string(raw) == "null" {
		// SentencePiece-style BPE: the normalised text is one word.
		t.splitFn = func(s string) []string { return []string{s} }
		return nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Type == "Metaspace" {
		m := &metaspace{Replacement: spaceMark, PrependScheme: "always", Split: true}
		if c.Replacement != nil {
			m.Replacement = *c.Replacement
		}
		if c.PrependScheme != nil {
			m.PrependScheme = *c.PrependScheme
		} else if !c.AddPrefixSpace && strings.Contains(string(raw), "add_prefix_space") {
			m.PrependScheme = "never"
		}
		if c.Split != nil {
			m.Split = *c.Split
		}
		if m.Replacement == "" || !slices.Contains([]string{"always", "first", "never"}, m.PrependScheme) {
			return fmt.Errorf("Metaspace replacement %q, prepend_scheme %q: want a replacement and always, first or never", m.Replacement, m.PrependScheme)
		}
		t.metaspace = m
		return nil
	}
	parts := []hfComponent{c}
	if c.Type == "Sequence" {
		parts = c.PreTokenizers
	}
	byteLevel := false
	for _, p := range parts {
		switch p.Type {
		case "ByteLevel":
			if byteLevel {
				return fmt.Errorf("ByteLevel twice")
			}
			byteLevel = true
			t.prefix = p.AddPrefixSpace
			if p.UseRegex == nil || *p.UseRegex {
				if t.splitFn != nil {
					return fmt.Errorf("a Split and ByteLevel's own regex")
				}
				t.splitFn = splitGPT2
			}
		case "Split":
			if byteLevel || t.splitFn != nil {
				return fmt.Errorf("a Split after ByteLevel or a second Split is not supported")
			}
			var pat struct{ Regex, String *string }
			if err := json.Unmarshal(p.Pattern, &pat); err != nil || pat.Regex == nil {
				return fmt.Errorf("Split: only a Regex pattern is supported")
			}
			if p.Behavior != "Isolated" || p.Invert {
				return fmt.Errorf("Split behavior %q (invert %v): only Isolated is supported", p.Behavior, p.Invert)
			}
			switch *pat.Regex {
			case gpt2Pattern:
				t.splitFn = splitGPT2
			case llama3Prefix:
				t.splitFn = func(s string) []string { return splitLlama3(s, 3) }
			case qwen2Pattern:
				t.splitFn = func(s string) []string { return splitLlama3(s, 1) }
			default:
				return fmt.Errorf("Split pattern %q: only the GPT-2, Llama 3 and Qwen 2 patterns are supported", *pat.Regex)
			}
		default:
			return fmt.Errorf("%q: only ByteLevel (and a Split before it), Metaspace or none is supported", p.Type)
		}
	}
	if !byteLevel {
		return fmt.Errorf("no ByteLevel: only byte-level, Metaspace or no pre-tokenisation is supported")
	}
	t.byteLevel = true
	if t.splitFn == nil {
		t.splitFn = func(s string) []string { return []string{s} }
	}
	return nil
}

// VocabSize is one more than the largest id.
func (t *HF) VocabSize() int { return t.size }

// Kind names the tokenizer.
func (t *HF) Kind() string {
	if t.byteLevel {
		return "tokenizer.json byte-level BPE"
	}
	return "tokenizer.json BPE"
}

// Encode returns the ids of text (no post-processor: no BOS or EOS). A
// byte that is not part of valid UTF-8 is read as U+FFFD, as a UTF-8
// decoder gives the text to Hugging Face's tokenizers.
func (t *HF) Encode(text string) []int {
	text = validUTF8(text)
	var out []int
	for first := true; text != ""; first = false {
		i, a, start, end := t.nextAdded(text)
		if i < 0 {
			out = t.encodePlain(text, first, out)
			break
		}
		out = t.encodePlain(text[:start], first, out)
		out = append(out, a.ID)
		text = text[end:]
	}
	return out
}

// nextAdded finds the leftmost added token in s (the longest there), and
// the span it takes with its lstrip/rstrip white space.
func (t *HF) nextAdded(s string) (int, addedToken, int, int) {
	if len(t.added) == 0 {
		return -1, addedToken{}, 0, 0
	}
	for i := 0; i < len(s); i++ {
		for _, a := range t.added {
			if !strings.HasPrefix(s[i:], a.Content) {
				continue
			}
			start, end := i, i+len(a.Content)
			if a.LStrip {
				start = len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			}
			if a.RStrip {
				end = len(s) - len(strings.TrimLeftFunc(s[end:], unicode.IsSpace))
			}
			return i, a, start, end
		}
	}
	return -1, addedToken{}, 0, 0
}

// encodePlain encodes a part of the text between added tokens (first:
// the text's first part).
func (t *HF) encodePlain(s string, first bool, out []int) []int {
	for _, n := range t.norm {
		s = n(s)
	}
	if s == "" {
		return out
	}
	if m := t.metaspace; m != nil {
		s = strings.ReplaceAll(s, " ", m.Replacement)
		if (m.PrependScheme == "always" || m.PrependScheme == "first" && first) && !strings.HasPrefix(s, m.Replacement) {
			s = m.Replacement + s
		}
		words := []string{s}
		if m.Split {
			words = splitBefore(s, m.Replacement)
		}
		for _, w := range words {
			out = t.bpe(w, out)
		}
		return out
	}
	if !t.byteLevel {
		return t.bpe(s, out)
	}
	if t.prefix && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	for _, w := range t.splitFn(s) {
		out = t.bpe(byteLevel(w), out)
	}
	return out
}

// splitBefore splits s before every occurrence of sep (the parts but the
// first start with sep).
func splitBefore(s, sep string) []string {
	var out []string
	for {
		i := strings.Index(s[min(len(sep), len(s)):], sep)
		if i < 0 {
			return append(out, s)
		}
		i += min(len(sep), len(s))
		out = append(out, s[:i])
		s = s[i:]
	}
}

// byteAlphabet maps each byte to the character that stands for it in a
// byte-level vocabulary: the printable bytes ! to ~, ¡ to ¬ and ® to ÿ
// stand for themselves, the other 68 for U+0100 onwards in byte order.
var byteAlphabet = func() (m [256]string) {
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			m[b] = string(rune(b))
		} else {
			m[b] = string(rune(256 + n))
			n++
		}
	}
	return m
}()

func byteLevel(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteString(byteAlphabet[s[i]])
	}
	return b.String()
}

// bpe merges one pre-token's byte-level string and appends the ids of
// its pieces.
func (t *HF) bpe(w string, out []int) []int {
	if t.ignore {
		if id, ok := t.vocab[w]; ok {
			return append(out, id)
		}
	}
	syms := make([]span, 0, len(w))
	for i, r := range w {
		syms = append(syms, span{start: i, end: i + utf8.RuneLen(r)})
	}
	// The lowest rank merges first: as a score, the highest −rank.
	merged := mergePairs(w, syms, func(l, r span) (float32, bool) {
		rank, ok := t.ranks[[2]string{w[l.start:l.end], w[r.start:r.end]}]
		return -float32(rank), ok
	})
	prevUnk := false
	for _, sp := range merged {
		piece := w[sp.start:sp.end]
		if id, ok := t.vocab[piece]; ok {
			out = append(out, id)
			prevUnk = false
			continue
		}
		if t.byteFallback {
			ids := make([]int, 0, len(piece))
			for i := 0; i < len(piece); i++ {
				if id, ok := t.vocab[fmt.Sprintf("<0x%02X>", piece[i])]; ok {
					ids = append(ids, id)
				}
			}
			if len(ids) == len(piece) {
				out = append(out, ids...)
				prevUnk = false
				continue
			}
		}
		if t.unk >= 0 && !(t.fuseUnk && prevUnk) {
			out = append(out, t.unk)
		}
		prevUnk = true
	}
	return out
}

func isL(r rune) bool     { return unicode.IsLetter(r) }
func isN(r rune) bool     { return unicode.IsNumber(r) }
func isSpace(r rune) bool { return unicode.IsSpace(r) }

// runAt returns the end of the longest run of runes from i that satisfy f.
func runAt(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, k := utf8.DecodeRuneInString(s[i:])
		if !f(r) {
			break
		}
		i += k
	}
	return i
}

// spaceRun matches \s+(?!\S)|\s+ at i (which starts a white-space run):
// the run less its last character when a non-space follows it and the run
// is longer than one character.
func spaceRun(s string, i int) int {
	end := runAt(s, i, isSpace)
	if end < len(s) {
		_, last := utf8.DecodeLastRuneInString(s[:end])
		if end-last > i {
			return end - last
		}
	}
	return end
}

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// splitGPT2 splits s as the GPT-2 pattern does:
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(s string) []string {
	var out []string
	other := func(r rune) bool { return !isSpace(r) && !isL(r) && !isN(r) }
	for i := 0; i < len(s); {
		end := -1
		for _, c := range contractions {
			if strings.HasPrefix(s[i:], c) {
				end = i + len(c)
				break
			}
		}
		if end < 0 {
			j := i
			if s[j] == ' ' {
				j++
			}
			if j < len(s) {
				r, _ := utf8.DecodeRuneInString(s[j:])
				for _, f := range []func(rune) bool{isL, isN, other} {
					if f(r) {
						end = runAt(s, j, f)
						break
					}
				}
			}
		}
		if end < 0 {
			end = spaceRun(s, i)
		}
		if end <= i { // not white space either: cannot happen, but never loop
			_, k := utf8.DecodeRuneInString(s[i:])
			end = i + k
		}
		out = append(out, s[i:end])
		i = end
	}
	return out
}

// splitLlama3 splits s as the Llama 3 pattern does:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// with digits runs of at most digits (3; Qwen 2's pattern: 1).
func splitLlama3(s string, digits int) []string {
	var out []string
	isCRLF := func(r rune) bool { return r == '\r' || r == '\n' }
	other := func(r rune) bool { return !isSpace(r) && !isL(r) && !isN(r) }
	for i := 0; i < len(s); {
		end := -1
		for _, c := range contractions {
			if len(s)-i >= len(c) && strings.EqualFold(s[i:i+len(c)], c) {
				end = i + len(c)
				break
			}
		}
		r, k := utf8.DecodeRuneInString(s[i:])
		if end < 0 {
			// [^\r\n\p{L}\p{N}]?\p{L}+
			j := i
			if !isCRLF(r) && !isL(r) && !isN(r) {
				j = i + k
			}
			if e := runAt(s, j, isL); e > j {
				end = e
			} else if e := runAt(s, i, isL); e > i {
				end = e
			}
		}
		if end < 0 && isN(r) { // \p{N}{1,digits}
			end = i
			for n := 0; n < digits && end < len(s); n++ {
				q, kk := utf8.DecodeRuneInString(s[end:])
				if !isN(q) {
					break
				}
				end += kk
			}
		}
		if end < 0 { //  ?[^\s\p{L}\p{N}]+[\r\n]*
			j := i
			if s[j] == ' ' {
				j++
			}
			if e := runAt(s, j, other); e > j {
				end = runAt(s, e, isCRLF)
			}
		}
		if end < 0 && isSpace(r) {
			// \s*[\r\n]+: the longest white-space run that ends in CR/LF
			// characters, up to its last CR or LF.
			e := runAt(s, i, isSpace)
			for p := e; p > i; {
				q, kk := utf8.DecodeLastRuneInString(s[i:p])
				if isCRLF(q) {
					end = p
					break
				}
				p -= kk
			}
			if end < 0 {
				end = spaceRun(s, i)
			}
		}
		if end <= i {
			end = i + k
		}
		out = append(out, s[i:end])
		i = end
	}
	return out
}

// validUTF8 replaces every byte that is not part of a valid UTF-8
// sequence by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, k := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && k == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+k])
		}
		i += k
	}
	return b.String()
}

package tflite

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// The flatbuffer verifier (verify_flatbuffer.go) is driven by the schema the
// fb package was generated from: it is embedded here and parsed once into
// the table layouts, enums and unions the verifier walks. The parser knows
// the subset of the flatbuffers schema language that schema.fbs uses
// (namespace, file_identifier, file_extension, root_type, enum, union,
// table, attributes); anything else is a parse error caught by the tests.

//go:embed fb/schema.fbs
var schemaText string

// fieldKind is how a field is stored in its table.
type fieldKind uint8

const (
	kindScalar       fieldKind = iota // inline scalar (or enum) of size bytes
	kindString                        // uoffset to a string
	kindTable                         // uoffset to a table
	kindUnionType                     // the ubyte type slot of a union field
	kindUnion                         // uoffset to the union's table
	kindVector                        // uoffset to a vector of scalars (or enums)
	kindVectorString                  // uoffset to a vector of strings
	kindVectorTable                   // uoffset to a vector of tables
)

// fbField is one vtable slot of a table.
type fbField struct {
	name   string
	kind   fieldKind
	size   int64   // scalar size (kindScalar, kindUnionType, element of kindVector)
	signed bool    // scalar is signed
	enum   *fbEnum // declared enum type of a scalar or scalar vector, or nil
	table  *fbTable
	union  *fbUnion
	align  int64 // force_align of a vector's payload (0 = none)
}

type fbTable struct {
	name   string
	fields []fbField // indexed by field id (vtable slot)
}

type fbEnum struct {
	name   string
	size   int64
	signed bool
	values map[int64]string
}

type fbUnion struct {
	name    string
	members []*fbTable // member i has type value i+1
}

type fbSchema struct {
	root      *fbTable
	maxFields int // the most field slots of any table
	tables    map[string]*fbTable
	enums     map[string]*fbEnum
	unions    map[string]*fbUnion
}

var (
	schemaOnce   sync.Once
	parsedSchema *fbSchema
	schemaErr    error
)

// tfliteSchema returns the parsed schema.fbs.
func tfliteSchema() (*fbSchema, error) {
	schemaOnce.Do(func() { parsedSchema, schemaErr = parseSchema(schemaText) })
	return parsedSchema, schemaErr
}

var scalarTypes = map[string]struct {
	size   int64
	signed bool
}{
	"bool": {1, false}, "byte": {1, true}, "ubyte": {1, false}, "int8": {1, true}, "uint8": {1, false},
	"short": {2, true}, "ushort": {2, false}, "int16": {2, true}, "uint16": {2, false},
	"int": {4, true}, "uint": {4, false}, "int32": {4, true}, "uint32": {4, false}, "float": {4, true}, "float32": {4, true},
	"long": {8, true}, "ulong": {8, false}, "int64": {8, true}, "uint64": {8, false}, "double": {8, true}, "float64": {8, true},
}

// schemaParser is a recursive-descent parser over the tokens of a schema.
type schemaParser struct {
	toks []string
	pos  int
	s    *fbSchema
	// fields are resolved after every declaration is read: a table may
	// name a type declared below it.
	pending []pendingField
	unions  map[string]bool // every union name, declared before or after its use
}

type pendingField struct {
	t        *fbTable
	slot     int
	typeName string
	vector   bool
}

func tokenizeSchema(src string) []string {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				j++
			}
			toks = append(toks, src[i:min(j+1, len(src))])
			i = j + 1
		case strings.IndexByte("{}()[]:;,=", c) >= 0:
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(src) && strings.IndexByte(" \t\r\n{}()[]:;,=\"/", src[j]) < 0 {
				j++
			}
			if j == i { // a lone '/'
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	return toks
}

func parseSchema(src string) (s *fbSchema, err error) {
	p := &schemaParser{toks: tokenizeSchema(src), unions: map[string]bool{}, s: &fbSchema{
		tables: map[string]*fbTable{}, enums: map[string]*fbEnum{}, unions: map[string]*fbUnion{},
	}}
	for i := 0; i+1 < len(p.toks); i++ {
		if p.toks[i] == "union" {
			p.unions[p.toks[i+1]] = true
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("tflite: embedded schema.fbs: %v (token %d)", r, p.pos)
		}
	}()
	var rootName string
	var unionMembers = map[*fbUnion][]string{}
	for p.pos < len(p.toks) {
		switch kw := p.next(); kw {
		case "namespace", "file_identifier", "file_extension", "include", "attribute":
			p.skipTo(";")
		case "root_type":
			rootName = p.next()
			p.expect(";")
		case "enum":
			p.enum()
		case "union":
			u := &fbUnion{name: p.next()}
			p.attributes()
			p.expect("{")
			for !p.accept("}") {
				unionMembers[u] = append(unionMembers[u], p.next())
				p.accept(",")
			}
			p.s.unions[u.name] = u
		case "table":
			p.table()
		default:
			panic(fmt.Sprintf("unexpected %q", kw))
		}
	}
	for u, names := range unionMembers {
		for _, n := range names {
			t := p.s.tables[n]
			if t == nil {
				panic(fmt.Sprintf("union %s: member %s is not a table", u.name, n))
			}
			u.members = append(u.members, t)
		}
	}
	for _, f := range p.pending {
		p.resolve(f)
	}
	for _, t := range p.s.tables {
		p.s.maxFields = max(p.s.maxFields, len(t.fields))
	}
	if p.s.root = p.s.tables[rootName]; p.s.root == nil {
		panic(fmt.Sprintf("root_type %q is not a table", rootName))
	}
	return p.s, nil
}

func (p *schemaParser) next() string {
	if p.pos >= len(p.toks) {
		panic("unexpected end of schema")
	}
	p.pos++
	return p.toks[p.pos-1]
}

func (p *schemaParser) accept(tok string) bool {
	if p.pos < len(p.toks) && p.toks[p.pos] == tok {
		p.pos++
		return true
	}
	return false
}

func (p *schemaParser) expect(tok string) {
	if got := p.next(); got != tok {
		panic(fmt.Sprintf("expected %q, got %q", tok, got))
	}
}

func (p *schemaParser) skipTo(tok string) {
	for p.next() != tok {
	}
}

// attributes reads an optional (name[: value], ...) list.
func (p *schemaParser) attributes() map[string]string {
	attrs := map[string]string{}
	if !p.accept("(") {
		return attrs
	}
	for !p.accept(")") {
		name := p.next()
		val := ""
		if p.accept(":") {
			val = p.next()
		}
		attrs[name] = val
		p.accept(",")
	}
	return attrs
}

func (p *schemaParser) enum() {
	e := &fbEnum{name: p.next(), values: map[int64]string{}}
	p.expect(":")
	base := p.next()
	st, ok := scalarTypes[base]
	if !ok || base == "float" || base == "double" || base == "float32" || base == "float64" || base == "bool" {
		panic(fmt.Sprintf("enum %s: bad underlying type %q", e.name, base))
	}
	e.size, e.signed = st.size, st.signed
	if len(p.attributes()) != 0 {
		panic(fmt.Sprintf("enum %s: attributes not supported", e.name))
	}
	p.expect("{")
	next := int64(0)
	for !p.accept("}") {
		name := p.next()
		if p.accept("=") {
			v, err := strconv.ParseInt(p.next(), 0, 64)
			if err != nil {
				panic(fmt.Sprintf("enum %s: %v", e.name, err))
			}
			next = v
		}
		e.values[next] = name
		next++
		p.accept(",")
	}
	p.s.enums[e.name] = e
}

func (p *schemaParser) table() {
	t := &fbTable{name: p.next()}
	p.attributes()
	p.expect("{")
	for !p.accept("}") {
		name := p.next()
		p.expect(":")
		vector := p.accept("[")
		typeName := p.next()
		if vector {
			p.expect("]")
		}
		if p.accept("=") {
			p.next() // default value: the verifier checks only present fields
		}
		attrs := p.attributes()
		if _, ok := attrs["id"]; ok {
			panic(fmt.Sprintf("table %s field %s: explicit ids not supported", t.name, name))
		}
		p.expect(";")
		f := fbField{name: name}
		if a, ok := attrs["force_align"]; ok {
			n, err := strconv.ParseInt(a, 0, 64)
			if err != nil {
				panic(fmt.Sprintf("table %s field %s: force_align %q", t.name, name, a))
			}
			f.align = n
		}
		if !vector {
			if p.unions[typeName] {
				t.fields = append(t.fields, fbField{name: name + "_type", kind: kindUnionType, size: 1})
			}
		}
		p.pending = append(p.pending, pendingField{t: t, slot: len(t.fields), typeName: typeName, vector: vector})
		t.fields = append(t.fields, f)
	}
	p.s.tables[t.name] = t
}

func (p *schemaParser) resolve(pf pendingField) {
	f := &pf.t.fields[pf.slot]
	where := pf.t.name + "." + f.name
	if pf.typeName == "string" {
		f.kind = kindString
		if pf.vector {
			f.kind = kindVectorString
		}
		return
	}
	if st, ok := scalarTypes[pf.typeName]; ok {
		f.kind, f.size, f.signed = kindScalar, st.size, st.signed
		if pf.vector {
			f.kind = kindVector
		}
		return
	}
	if e, ok := p.s.enums[pf.typeName]; ok {
		f.kind, f.size, f.signed, f.enum = kindScalar, e.size, e.signed, e
		if pf.vector {
			f.kind = kindVector
		}
		return
	}
	if t, ok := p.s.tables[pf.typeName]; ok {
		f.kind, f.table = kindTable, t
		if pf.vector {
			f.kind = kindVectorTable
		}
		return
	}
	if u, ok := p.s.unions[pf.typeName]; ok && !pf.vector {
		f.kind, f.union = kindUnion, u
		return
	}
	panic(fmt.Sprintf("%s: unsupported type %q (vector %v)", where, pf.typeName, pf.vector))
}

package tflite

import (
	"fmt"
	"strings"
)

// The structural verifier walks every table, vector and string reachable
// from the root of the flatbuffer part, guided by the embedded schema
// (fbschema.go), before anything is unpacked. It checks what a flatbuffers
// verifier checks, and a little more:
//
//   - every table: its soffset 4-aligned and in bounds and not 0 (a table
//     that is its own vtable), its vtable 2-aligned, in bounds, of an even
//     size >= 4 and clear of the table's soffset, the table's inline size
//     >= 4 and in bounds;
//   - every present field: inside its table's inline size, past the
//     soffset, clear of the table's vtable, aligned to its own size;
//   - every uoffset: 4-aligned, non-zero (zero points back at itself) and
//     below 2^31, its target in bounds;
//   - every vector: length prefix 4-aligned and in bounds, its elements in
//     bounds, 8-byte elements 8-aligned; every string: its NUL terminator in
//     bounds and zero;
//   - every enum-typed scalar (and enum vector element) a value the schema
//     declares, every union type a declared member, set only with its value;
//   - no present field the schema does not know (qpipe would drop it on
//     writing);
//   - bounded work: nesting at most maxDepth deep, at most one visited
//     object per 4 bytes of flatbuffer (plus slack, enum vector elements
//     charged per 4 bytes), and at most maxFields vtable slots per object:
//     shared sub-tables, vectors or vtables cannot make the walk, or the
//     unpacking after it, blow up.

// maxDepth bounds table nesting, as the flatbuffers verifier does by
// default; TFLite models nest about 10 deep.
const maxDepth = 64

type fbVerifier struct {
	d      *decoder
	buf    []byte
	n      int64
	visits int64
	// slots counts the vtable slots read, against maxSlots: an honest
	// table has at most as many slots as its schema table has fields, so
	// maxFields per visited object bounds them; a hostile file sharing one
	// 65534-byte vtable among many small tables cannot make the walk
	// quadratic.
	slots, maxSlots int64
	path            []pathElem
}

type pathElem struct {
	name  string
	index int // -1: not a vector element
}

// verifyFlatbuffer checks the structure of the whole flatbuffer part d.buf.
func (d *decoder) verifyFlatbuffer() error {
	s, err := tfliteSchema()
	if err != nil {
		return err
	}
	v := &fbVerifier{d: d, buf: d.buf, n: int64(len(d.buf))}
	v.maxSlots = int64(s.maxFields) * v.maxVisits()
	if v.n < 8 {
		return d.errorf("", -1, "file is %d bytes, too short for a .tflite model", v.n)
	}
	root := int64(v.u32(0))
	if root == 0 {
		return d.errorf("", 0, "root offset is 0: the root table would overlap the file header")
	}
	return v.table(root, s.root, 0)
}

func (v *fbVerifier) u16(p int64) uint16 { return v.d.u16(p) }
func (v *fbVerifier) u32(p int64) uint32 { return v.d.u32(p) }

// elementWords names the elements of the vectors that errors elsewhere in
// the package name the same way ("subgraph 0 tensor 3").
var elementWords = map[string]string{
	"subgraphs": "subgraph", "tensors": "tensor", "operators": "operator", "buffers": "buffer",
	"operator_codes": "operator code", "signature_defs": "signature", "metadata": "metadata",
}

// where names the object being verified, e.g. "subgraph 0 operator 3
// builtin_options(Conv2DOptions).padding".
func (v *fbVerifier) where() string {
	var b strings.Builder
	sep := ""
	for _, e := range v.path {
		if w, ok := elementWords[e.name]; ok && e.index >= 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s %d", w, e.index)
			sep = " "
			continue
		}
		b.WriteString(sep)
		b.WriteString(e.name)
		if e.index >= 0 {
			fmt.Fprintf(&b, "[%d]", e.index)
		}
		sep = "."
	}
	if b.Len() == 0 {
		return "model table"
	}
	return b.String()
}

func (v *fbVerifier) fail(off int64, format string, a ...any) error {
	return v.d.errorf(v.where(), off, "%s: file corrupt", fmt.Sprintf(format, a...))
}

func (v *fbVerifier) push(name string, index int) { v.path = append(v.path, pathElem{name, index}) }
func (v *fbVerifier) pop()                        { v.path = v.path[:len(v.path)-1] }

// in says whether [p, p+size) lies in the buffer.
func (v *fbVerifier) in(p, size int64) bool { return p >= 0 && size >= 0 && p <= v.n && size <= v.n-p }

// visit charges one object to the walk's budget.
func (v *fbVerifier) visit(p int64) error {
	v.visits++
	if v.visits > v.maxVisits() {
		return v.fail(p, "more objects are referenced than the flatbuffer (%d bytes) can hold: tables or vectors are shared or overlap", v.n)
	}
	return nil
}

// maxVisits is the walk's budget of objects: one per 4 bytes, plus slack.
func (v *fbVerifier) maxVisits() int64 { return v.n/4 + 1024 }

// offset follows the uoffset stored at p.
func (v *fbVerifier) offset(p int64, what string) (int64, error) {
	if p%4 != 0 {
		return 0, v.fail(p, "%s offset at a position not aligned to 4", what)
	}
	u := v.u32(p)
	if u == 0 {
		return 0, v.fail(p, "%s offset is 0: it points at itself", what)
	}
	if u >= 1<<31 {
		return 0, v.fail(p, "%s offset %#x is negative as a signed offset", what, u)
	}
	t := p + int64(u)
	if t >= v.n {
		return 0, v.fail(p, "%s at byte %#x lies outside the flatbuffer (%d bytes)", what, t, v.n)
	}
	return t, nil
}

func (v *fbVerifier) table(pos int64, t *fbTable, depth int) error {
	if err := v.visit(pos); err != nil {
		return err
	}
	if depth > maxDepth {
		return v.fail(pos, "tables nest more than %d deep", maxDepth)
	}
	if pos%4 != 0 {
		return v.fail(pos, "%s table at a position not aligned to 4", t.name)
	}
	if !v.in(pos, 4) {
		return v.fail(pos, "%s table lies outside the flatbuffer (%d bytes)", t.name, v.n)
	}
	vt := pos - int64(int32(v.u32(pos)))
	if vt == pos {
		return v.fail(pos, "%s table's vtable offset is 0: the table is its own vtable", t.name)
	}
	if vt%2 != 0 || !v.in(vt, 4) {
		return v.fail(pos, "%s table's vtable at byte %#x is misaligned or outside the flatbuffer", t.name, vt)
	}
	vsize, tsize := int64(v.u16(vt)), int64(v.u16(vt+2))
	if vsize < 4 || vsize%2 != 0 || !v.in(vt, vsize) {
		return v.fail(vt, "%s table's vtable has size %d (must be even, >= 4, and fit in the flatbuffer)", t.name, vsize)
	}
	if tsize < 4 || !v.in(pos, tsize) {
		return v.fail(pos, "%s table has inline size %d (must be >= 4 and fit in the flatbuffer)", t.name, tsize)
	}
	// The table's inline size may count alignment padding that a shared
	// vtable written next to it reuses; only the soffset and the present
	// fields must stay clear of the vtable.
	if overlaps(vt, vsize, pos, 4) {
		return v.fail(pos, "%s table's vtable (bytes %#x..%#x) overlaps the table's own vtable offset", t.name, vt, vt+vsize)
	}
	slots := int((vsize - 4) / 2)
	if v.slots += int64(slots); v.slots > v.maxSlots {
		return v.fail(vt, "%s table's vtable has %d slots; the tables read so far have more vtable slots than a flatbuffer of %d bytes can honestly hold (%d fields per table at most)",
			t.name, slots, v.n, v.maxSlots/v.maxVisits())
	}
	for slot := 0; slot < slots; slot++ {
		off := int64(v.u16(vt + 4 + 2*int64(slot)))
		if off == 0 {
			continue
		}
		if slot >= len(t.fields) {
			return v.fail(pos, "%s table has field id %d, unknown to qpipe's schema (a newer converter?); qpipe would drop it", t.name, slot)
		}
		if err := v.field(pos, tsize, off, t, slot, depth); err != nil {
			return err
		}
	}
	return nil
}

func (v *fbVerifier) field(pos, tsize, off int64, t *fbTable, slot, depth int) error {
	f := &t.fields[slot]
	v.push(f.name, -1)
	defer v.pop()
	width := int64(4)
	if f.kind == kindScalar || f.kind == kindUnionType {
		width = f.size
	}
	if off < 4 || off+width > tsize {
		return v.fail(pos, "field lies outside its %s table (offset %d, size %d, table size %d)", t.name, off, width, tsize)
	}
	fp := pos + off
	vt := pos - int64(int32(v.u32(pos)))
	if vsize := int64(v.u16(vt)); overlaps(vt, vsize, fp, width) {
		return v.fail(fp, "field overlaps its own table's vtable (bytes %#x..%#x)", vt, vt+vsize)
	}
	if fp%width != 0 {
		return v.fail(fp, "field at a position not aligned to %d", width)
	}
	switch f.kind {
	case kindScalar:
		return v.enumValue(f, fp)
	case kindUnionType:
		u := t.fields[slot+1].union
		typ := int(v.buf[fp])
		if typ > len(u.members) {
			return v.fail(fp, "union type %d is not a member of %s (it has %d)", typ, u.name, len(u.members))
		}
		if typ != 0 && !v.present(pos, slot+1) {
			// The object API keeps a union only with its value: the
			// type alone would be dropped on writing (and the runtime
			// refuses blockwise quantization without its details).
			return v.fail(fp, "union type %d (%s) is set but its %s value is absent", typ, u.members[typ-1].name, t.fields[slot+1].name)
		}
		return nil
	case kindUnion:
		typ := v.unionType(pos, t, slot)
		if typ == 0 {
			return nil // NONE: the value is ignored, as by the runtime
		}
		target, err := v.offset(fp, f.union.name)
		if err != nil {
			return err
		}
		m := f.union.members[typ-1]
		v.path[len(v.path)-1].name = fmt.Sprintf("%s(%s)", f.name, m.name)
		return v.table(target, m, depth+1)
	case kindTable:
		target, err := v.offset(fp, f.table.name)
		if err != nil {
			return err
		}
		return v.table(target, f.table, depth+1)
	case kindString:
		target, err := v.offset(fp, "string")
		if err != nil {
			return err
		}
		return v.string(target)
	default:
		target, err := v.offset(fp, "vector")
		if err != nil {
			return err
		}
		return v.vector(target, f, depth)
	}
}

// present says whether field slot of the table at pos has a value.
func (v *fbVerifier) present(pos int64, slot int) bool {
	vt := pos - int64(int32(v.u32(pos)))
	vo := 4 + 2*int64(slot)
	return vo+2 <= int64(v.u16(vt)) && v.u16(vt+vo) != 0
}

// unionType reads the type slot that precedes union field slot; a type
// slot outside the table was reported when the slot was visited (slots are
// visited in order).
func (v *fbVerifier) unionType(pos int64, t *fbTable, slot int) int {
	vt := pos - int64(int32(v.u32(pos)))
	vo := 4 + 2*int64(slot-1)
	if vo+2 > int64(v.u16(vt)) {
		return 0
	}
	off := int64(v.u16(vt + vo))
	if off == 0 {
		return 0
	}
	typ := int(v.buf[pos+off])
	if typ > len(t.fields[slot].union.members) {
		return 0
	}
	return typ
}

func (v *fbVerifier) enumValue(f *fbField, p int64) error {
	if f.enum == nil {
		return nil
	}
	var x int64
	switch f.size {
	case 1:
		x = int64(v.buf[p])
		if f.signed {
			x = int64(int8(x))
		}
	case 2:
		x = int64(v.u16(p))
		if f.signed {
			x = int64(int16(x))
		}
	case 4:
		x = int64(v.u32(p))
		if f.signed {
			x = int64(int32(x))
		}
	default:
		x = int64(v.d.u64(p))
	}
	if _, ok := f.enum.values[x]; !ok {
		return v.fail(p, "%d is not a %s value in qpipe's schema", x, f.enum.name)
	}
	return nil
}

// vectorHeader checks the length prefix at p and that n elements of size
// bytes follow it; it returns the position of the first element and n.
func (v *fbVerifier) vectorHeader(p, size int64, what string) (int64, int64, error) {
	if err := v.visit(p); err != nil {
		return 0, 0, err
	}
	if p%4 != 0 {
		return 0, 0, v.fail(p, "%s at a position not aligned to 4", what)
	}
	if !v.in(p, 4) {
		return 0, 0, v.fail(p, "%s length lies outside the flatbuffer (%d bytes)", what, v.n)
	}
	n := int64(v.u32(p))
	if !v.in(p+4, n*size) {
		return 0, 0, v.fail(p, "%s of %d elements of %d bytes runs past the end of the flatbuffer (%d bytes)", what, n, size, v.n)
	}
	if size == 8 && (p+4)%8 != 0 {
		return 0, 0, v.fail(p, "%s of 8-byte elements not aligned to 8", what)
	}
	return p + 4, n, nil
}

func (v *fbVerifier) string(p int64) error {
	start, n, err := v.vectorHeader(p, 1, "string")
	if err != nil {
		return err
	}
	if !v.in(start+n, 1) || v.buf[start+n] != 0 {
		return v.fail(p, "string of %d bytes lacks its NUL terminator", n)
	}
	return nil
}

func (v *fbVerifier) vector(p int64, f *fbField, depth int) error {
	size := int64(4)
	if f.kind == kindVector {
		size = f.size
	}
	start, n, err := v.vectorHeader(p, size, "vector")
	if err != nil {
		return err
	}
	if f.kind == kindVector && f.enum != nil {
		// Its elements are read one by one: charge them as objects (one
		// per 4 bytes), so a shared enum vector cannot multiply the work.
		v.visits += n * size / 4
		if err := v.visit(p); err != nil {
			return err
		}
	}
	for i := int64(0); i < n; i++ {
		ep := start + i*size
		v.path[len(v.path)-1].index = int(i)
		switch f.kind {
		case kindVector:
			if f.enum == nil {
				return nil
			}
			if err := v.enumValue(f, ep); err != nil {
				return err
			}
		case kindVectorString:
			target, err := v.offset(ep, "string")
			if err != nil {
				return err
			}
			if err := v.string(target); err != nil {
				return err
			}
		case kindVectorTable:
			target, err := v.offset(ep, f.table.name)
			if err != nil {
				return err
			}
			if err := v.table(target, f.table, depth+1); err != nil {
				return err
			}
		}
	}
	v.path[len(v.path)-1].index = -1
	return nil
}

// overlaps says whether [a, a+an) and [b, b+bn) share a byte.
func overlaps(a, an, b, bn int64) bool { return a < b+bn && b < a+an }

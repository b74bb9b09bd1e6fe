package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Reasons of a Flaw.
const (
	// ReasonNUL is a string holding a NUL character (U+0000), raw or as
	// the escape \u0000: PostgreSQL stores it neither in text nor in jsonb.
	ReasonNUL = "must not contain a NUL character (U+0000)"
	// ReasonNULName is a property name holding a NUL character.
	ReasonNULName = "has a property name containing a NUL character (U+0000)"
	// ReasonUTF8 is a string that is not valid UTF-8: JSON must be, and
	// a UTF-8 database refuses it.
	ReasonUTF8 = "must be valid UTF-8"
	// ReasonUTF8Name is a property name that is not valid UTF-8.
	ReasonUTF8Name = "has a property name that is not valid UTF-8"
	// ReasonDuplicate is a property given twice in one object: decoders
	// disagree on which occurrence wins.
	ReasonDuplicate = "is given more than once"
)

// Flaw is a place in a JSON document that is well-formed JSON but that no
// consumer can take: text a database cannot store, or (when asked for) a
// property given twice. It never holds the offending value.
type Flaw struct {
	// Path leads from the root to the flawed value (or, for a flawed
	// property name, to its object). Property names come from the
	// document; Pointer and Location withhold those that do not look like
	// field names.
	Path []PathSegment
	// Reason is one of the Reason constants.
	Reason string
}

// PathSegment is a property name, or an array index when Index >= 0.
type PathSegment struct {
	Name  string
	Index int
}

// Pointer is the flaw's place as a JSON pointer ("/result/tests/0/name").
func (f *Flaw) Pointer() string {
	segs := make([]string, len(f.Path))
	for i, s := range f.Path {
		segs[i] = s.String()
	}
	return pointer(segs)
}

// Location is the flaw's place in the style of huma's error locations,
// under prefix: "body.result.tests[0].name".
func (f *Flaw) Location(prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, s := range f.Path {
		if s.Index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.Index) + "]")
			continue
		}
		b.WriteByte('.')
		if segment.MatchString(s.Name) {
			b.WriteString(s.Name)
		} else {
			b.WriteString(withheld)
		}
	}
	return b.String()
}

func (s PathSegment) String() string {
	if s.Index >= 0 {
		return strconv.Itoa(s.Index)
	}
	return s.Name
}

// ScanOptions say what Scan looks for besides text.
type ScanOptions struct {
	// Duplicates reports a property given twice in one object.
	Duplicates bool
}

// Scan walks the first JSON value of payload and returns its first flaw:
// a string or property name holding a NUL character or invalid UTF-8, or
// with opts.Duplicates a repeated property. It returns nil, nil when there
// is none, and an error when payload is not JSON; the caller's own decoder
// words that better.
func Scan(payload []byte, opts ScanOptions) (*Flaw, error) {
	if !opts.Duplicates && utf8.Valid(payload) && !bytes.Contains(payload, []byte(`\u0000`)) && bytes.IndexByte(payload, 0) < 0 {
		// Nothing to find: the walk is only needed to say where.
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	w := walker{opts: opts}
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(w.stack) > 0 {
				return nil, fmt.Errorf("scan JSON: %w", io.ErrUnexpectedEOF)
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("scan JSON: %w", err)
		}
		// The bytes since the previous token are separators (ASCII) and
		// this token: the decoder replaced invalid UTF-8 in a string with
		// U+FFFD, so only the raw bytes tell.
		raw := payload[start:dec.InputOffset()]
		if f := w.token(tok, raw); f != nil {
			return f, nil
		}
		if w.done {
			return nil, nil
		}
	}
}

// frame is an open object or array.
type frame struct {
	object bool
	// keys are the object's property names so far, when duplicates are
	// looked for.
	keys map[string]bool
	// key is the current property name, valid between a name and its value.
	key     string
	wantKey bool
	// index is the next element of an array.
	index int
}

type walker struct {
	opts  ScanOptions
	stack []*frame
	done  bool
}

// path is where a value read now sits.
func (w *walker) path() []PathSegment {
	p := make([]PathSegment, 0, len(w.stack))
	for _, f := range w.stack {
		if f.object {
			p = append(p, PathSegment{Name: f.key, Index: -1})
		} else {
			p = append(p, PathSegment{Index: f.index})
		}
	}
	return p
}

// parentPath is the path of the innermost open object, for a flaw in one
// of its property names.
func (w *walker) parentPath() []PathSegment {
	p := w.path()
	return p[:len(p)-1]
}

func (w *walker) token(tok json.Token, raw []byte) *Flaw {
	var top *frame
	if len(w.stack) > 0 {
		top = w.stack[len(w.stack)-1]
	}
	if top != nil && top.object && top.wantKey {
		if d, ok := tok.(json.Delim); ok && d == '}' {
			w.pop()
			return nil
		}
		name, _ := tok.(string)
		top.wantKey = false
		switch {
		case !utf8.Valid(raw):
			return &Flaw{Path: w.parentPath(), Reason: ReasonUTF8Name}
		case strings.IndexByte(name, 0) >= 0:
			return &Flaw{Path: w.parentPath(), Reason: ReasonNULName}
		}
		top.key = name
		if w.opts.Duplicates {
			if top.keys[name] {
				return &Flaw{Path: w.path(), Reason: ReasonDuplicate}
			}
			top.keys[name] = true
		}
		return nil
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			f := &frame{object: true, wantKey: true}
			if w.opts.Duplicates {
				f.keys = map[string]bool{}
			}
			w.stack = append(w.stack, f)
			return nil
		case '[':
			w.stack = append(w.stack, &frame{})
			return nil
		default: // ']'
			w.pop()
			return nil
		}
	case string:
		switch {
		case !utf8.Valid(raw):
			return &Flaw{Path: w.path(), Reason: ReasonUTF8}
		case strings.IndexByte(v, 0) >= 0:
			return &Flaw{Path: w.path(), Reason: ReasonNUL}
		}
	}
	w.next()
	return nil
}

// next moves past a complete value.
func (w *walker) next() {
	if len(w.stack) == 0 {
		w.done = true
		return
	}
	top := w.stack[len(w.stack)-1]
	if top.object {
		top.wantKey = true
	} else {
		top.index++
	}
}

func (w *walker) pop() {
	w.stack = w.stack[:len(w.stack)-1]
	w.next()
}

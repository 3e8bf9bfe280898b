package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// JSON masks secrets in the JSON document data: every string value is
// decoded, passed through mask and encoded again. Secrets are matched in
// their decoded form (a password with & < > " \ in it is found), and
// keys, numbers, booleans, null and the document's shape are never touched,
// so the output is valid JSON whatever a secret is (e.g. "true"). The
// result is indented with two spaces.
func JSON(data []byte, mask func(string) string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out bytes.Buffer
	// One entry per open container: true for an object; and whether its
	// next string is a key, and whether it holds an element yet.
	type frame struct{ obj, key, any bool }
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			out.WriteByte(byte(d))
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].key = true
			}
			continue
		}
		isKey := false
		if n := len(stack); n > 0 {
			f := &stack[n-1]
			isKey = f.obj && f.key
			if f.any && (isKey || !f.obj) {
				out.WriteByte(',')
			}
			f.any = true
			if f.obj {
				f.key = !isKey
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, frame{obj: v == '{', key: v == '{'})
			continue
		case string:
			if !isKey {
				v = mask(v)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			out.Write(b)
		case json.Number:
			out.WriteString(v.String())
		case bool:
			if v {
				out.WriteString("true")
			} else {
				out.WriteString("false")
			}
		case nil:
			out.WriteString("null")
		}
		if isKey {
			out.WriteByte(':')
		}
	}
	if len(stack) != 0 {
		return nil, errors.New("redact: unterminated JSON document")
	}
	var ind bytes.Buffer
	if err := json.Indent(&ind, out.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	return ind.Bytes(), nil
}

// Marshal encodes v as indented JSON with r masking every string value.
func (r *Redactor) Marshal(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return JSON(data, r.String)
}

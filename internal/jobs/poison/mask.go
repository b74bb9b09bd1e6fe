package poison

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Masked stands for a value hidden from operators.
const Masked = "***"

// phiKeys name the payload fields that carry patient data in the inbound
// contracts (contracts/*.schema.json): the patient block, result tests and
// their summary, and free-text descriptions. Each is masked with all it
// holds.
var phiKeys = map[string]bool{
	"patient":      true,
	"patient_ref":  true,
	"display_name": true,
	"birth_year":   true,
	"tests":        true,
	"summary":      true,
	"description":  true,
	"result_text":  true,
}

// Pretty renders a payload for an operator: indented JSON with the PHI
// fields masked, or everything when reveal is set. A payload that is not
// JSON cannot be masked field by field: it is hidden unless revealed.
func Pretty(payload []byte, reveal bool) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		if reveal {
			return string(payload)
		}
		return fmt.Sprintf("(%d bytes, not JSON: hidden, as it may hold patient data; --reveal shows it)", len(payload))
	}
	if !reveal {
		v = mask(v)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("(cannot render: %v)", err)
	}
	return string(out)
}

// MaskJSON returns payload with the PHI fields masked, compact; nil when
// the payload is not JSON.
func MaskJSON(payload []byte) json.RawMessage {
	var v any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil
	}
	out, err := json.Marshal(mask(v))
	if err != nil {
		return nil
	}
	return out
}

func mask(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if phiKeys[k] {
				x[k] = Masked
				continue
			}
			x[k] = mask(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = mask(x[i])
		}
		return x
	}
	return v
}

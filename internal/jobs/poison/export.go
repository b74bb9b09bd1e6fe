package poison

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// exportPage is how many rows Export reads at a time.
const exportPage = 500

// Export writes the messages f selects to w, one JSON object per line, in
// the order of List. Payloads are masked (PHI fields, see Pretty; a
// payload that is not JSON is left out, payload_encoding "hidden") unless
// reveal is set; the caller audits a revealing export.
func (s *Service) Export(ctx context.Context, w io.Writer, f Filter, reveal bool) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := 0
	f.Limit = exportPage
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			return n, err
		}
		for _, m := range page {
			if !reveal {
				raw, err := m.RawPayload()
				if err != nil {
					return n, err
				}
				if masked := MaskJSON(raw); masked != nil {
					m.Payload, m.PayloadEncoding = string(masked), "masked"
				} else {
					m.Payload, m.PayloadEncoding = "", "hidden"
				}
			}
			if err := enc.Encode(m); err != nil {
				return n, fmt.Errorf("poison: export: %w", err)
			}
			n++
		}
		if len(page) < exportPage {
			return n, nil
		}
		f.After = page[len(page)-1].ID
	}
}

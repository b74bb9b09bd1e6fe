package api

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Cursors are opaque to clients: base64url of a kind and the keyset
// position of the last row of the page. A cursor of another list, or one
// that does not decode, is 422 at query.cursor.

func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x1f")))
}

func decodeCursor(kind, raw string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err == nil {
		parts := strings.Split(string(b), "\x1f")
		if len(parts) == n+1 && parts[0] == kind {
			return parts[1:], nil
		}
	}
	return nil, badCursor(raw)
}

func badCursor(raw string) error {
	return huma.Error422UnprocessableEntity("invalid cursor", &huma.ErrorDetail{
		Message:  "not a cursor of this list: pass the next_cursor of the previous page unchanged",
		Location: "query.cursor",
		Value:    raw,
	})
}

// seqCursor is the position in a doctor's notifications: their seq.
func seqCursor(seq int64) string { return encodeCursor("n1", strconv.FormatInt(seq, 10)) }

func parseSeqCursor(raw string) (int64, error) {
	parts, err := decodeCursor("n1", raw, 1)
	if err != nil {
		return 0, err
	}
	seq, perr := strconv.ParseInt(parts[0], 10, 64)
	if perr != nil || seq < 1 {
		return 0, badCursor(raw)
	}
	return seq, nil
}

// timeIDCursor is a position in a list ordered by (time, id) descending.
func timeIDCursor(kind string, t time.Time, id string) string {
	return encodeCursor(kind, strconv.FormatInt(t.UTC().UnixMicro(), 10), id)
}

func parseTimeIDCursor(kind, raw string) (time.Time, string, error) {
	parts, err := decodeCursor(kind, raw, 2)
	if err != nil {
		return time.Time{}, "", err
	}
	us, perr := strconv.ParseInt(parts[0], 10, 64)
	if perr != nil {
		return time.Time{}, "", badCursor(raw)
	}
	return time.UnixMicro(us).UTC(), parts[1], nil
}

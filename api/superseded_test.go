package api_test

import (
	"net/http"
	"testing"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// TestSupersededByThroughTheAPI: the doctor reading a superseded
// notification sees superseded_by, the id of the correction's notification
// to them, on every backend and transport; the correction itself has none.
func TestSupersededByThroughTheAPI(t *testing.T) {
	for _, name := range testenv.Combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, name)
			f.registerDoctor("doc-a")
			f.result("CHK-1", 1, "final", false, "Somchai Jaidee", "doc-a")
			f.result("CHK-1", 2, "corrected", false, "Somchai Jaidee", "doc-a")
			oldID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-1' AND result_version = 1`)
			newID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-1' AND result_version = 2`)
			tok := f.token("doc-a")

			var old api.NotificationDetail
			f.do(http.MethodGet, "/v1/notifications/"+oldID, tok, nil).ok(t, http.StatusOK, &old)
			if old.State != domain.StateSuperseded || old.SupersededBy == nil || *old.SupersededBy != newID {
				t.Fatalf("superseded notification: state %q, superseded_by %v, want %s", old.State, old.SupersededBy, newID)
			}
			var cur api.NotificationDetail
			f.do(http.MethodGet, "/v1/notifications/"+newID, tok, nil).ok(t, http.StatusOK, &cur)
			if cur.State != domain.StateActive || cur.SupersededBy != nil {
				t.Fatalf("correction: state %q, superseded_by %v", cur.State, cur.SupersededBy)
			}
		})
	}
}

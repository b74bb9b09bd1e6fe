package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
)

// announce makes n announcements for doctor ext through the notifier.
func (f *fixture) announce(ext string, from, n int) {
	f.t.Helper()
	err := f.env.DB.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		for i := from; i < from+n; i++ {
			_, err := f.notifier.Notify(ctx, tx, notify.Intent{
				Key: fmt.Sprintf("test/announcement/%d", i), SourceEventID: "test", Type: templates.TypeAnnouncement,
				Category: domain.CategoryAnnouncements, Priority: domain.PriorityNormal,
				Detail: templates.Data{AnnouncementTitle: fmt.Sprintf("Announcement %d", i)},
			}, []string{ext})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestKeysetPagination: pages follow each other with no overlap and no gap,
// even when notifications arrive between two pages; the cursor is opaque
// and refused when it is not one of this list's.
func TestKeysetPagination(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-p")
		f.announce("doc-p", 0, 24)
		tok := f.token("doc-p")
		want := f.notificationIDs("doc-p", "") // 25 with the welcome, newest first
		if len(want) != 25 {
			t.Fatalf("%d notifications", len(want))
		}

		var got []string
		cursor := ""
		pages := 0
		for {
			q := "/v1/notifications?limit=10"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var page api.NotificationPage
			f.do(http.MethodGet, q, tok, nil).ok(t, http.StatusOK, &page)
			pages++
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if pages == 1 {
				// Newer notifications arrive: page 2 still continues page 1.
				f.announce("doc-p", 100, 3)
			}
			if page.NextCursor == "" {
				break
			}
			if len(page.Items) != 10 {
				t.Fatalf("page %d has %d items and a cursor", pages, len(page.Items))
			}
			cursor = page.NextCursor
		}
		if pages != 3 || !slices.Equal(got, want) {
			t.Fatalf("%d pages, items %v\nwant %v", pages, got, want)
		}

		// Filters hold across pages.
		got = nil
		cursor = ""
		for {
			q := "/v1/notifications?limit=4&category=announcements&unread=true"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var page api.NotificationPage
			f.do(http.MethodGet, q, tok, nil).ok(t, http.StatusOK, &page)
			for _, it := range page.Items {
				if it.Category != domain.CategoryAnnouncements || it.ReadAt != nil {
					t.Fatalf("filter broken: %+v", it)
				}
				got = append(got, it.ID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if len(got) != 28 {
			t.Fatalf("%d filtered items, want 28", len(got))
		}

		for _, c := range []string{"not-base64!", "bjE", "bzEfMTIzH09SRC0x", strings.Repeat("A", 40)} {
			p := f.do(http.MethodGet, "/v1/notifications?cursor="+url.QueryEscape(c), tok, nil).problem(t, http.StatusUnprocessableEntity)
			if !p.hasLocation("query.cursor") {
				t.Errorf("cursor %q: %+v", c, p)
			}
		}
	})
}

// TestOrderPagination: orders page newest first by creation, ties broken by
// id, with no overlap and no gap.
func TestOrderPagination(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-p")
		start := f.now
		for i := 1; i <= 5; i++ {
			if i == 4 {
				f.now = start.Add(time.Second) // P4 and P5 are newer; P1..P3 tie
			}
			f.order(fmt.Sprintf("ORD-P%d", i), 1, "placed", "doc-p")
		}
		f.order("ORD-OTHER", 1, "placed", "doc-other")
		tok := f.token("doc-p")
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			q := "/v1/orders?limit=2"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var page api.OrderPage
			f.do(http.MethodGet, q, tok, nil).ok(t, http.StatusOK, &page)
			for _, o := range page.Items {
				got = append(got, o.ID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if want := []string{"ORD-P5", "ORD-P4", "ORD-P3", "ORD-P2", "ORD-P1"}; !slices.Equal(got, want) {
			t.Fatalf("orders %v, want %v", got, want)
		}
		// A notifications cursor is not an orders cursor.
		f.announce("doc-p", 0, 1)
		var np api.NotificationPage
		f.do(http.MethodGet, "/v1/notifications?limit=1", tok, nil).ok(t, http.StatusOK, &np)
		if np.NextCursor == "" {
			t.Fatal("no cursor")
		}
		f.do(http.MethodGet, "/v1/orders?cursor="+url.QueryEscape(np.NextCursor), tok, nil).problem(t, http.StatusUnprocessableEntity)
	})
}

package domain

import (
	"slices"
	"testing"
	"time"
)

func TestMandatoryChannelsCannotBeSwitchedOff(t *testing.T) {
	p := DefaultPreferences()
	p.Channels[CategoryCriticalResults] = nil
	p.Channels[CategorySecurity] = []Channel{ChannelEmail}
	p.Channels[CategoryResults] = nil
	if got := p.ChannelsFor(CategoryCriticalResults); !slices.Equal(got, []Channel{ChannelInApp}) {
		t.Errorf("critical results with everything off = %v, want in_app", got)
	}
	if got := p.ChannelsFor(CategorySecurity); !slices.Equal(got, []Channel{ChannelInApp, ChannelEmail}) {
		t.Errorf("security = %v", got)
	}
	if got := p.ChannelsFor(CategoryResults); len(got) != 0 {
		t.Errorf("results switched off = %v, want none", got)
	}
}

func TestQuietHoursDefer(t *testing.T) {
	bkk, err := time.LoadLocation("Asia/Bangkok")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, bkk)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	overnight := QuietHours{Start: "22:00", End: "07:00"}
	cases := []struct {
		q    QuietHours
		now  string
		want string
	}{
		{overnight, "2026-11-25 23:30", "2026-11-26 07:00"},
		{overnight, "2026-11-26 03:00", "2026-11-26 07:00"},
		{overnight, "2026-11-26 07:00", "2026-11-26 07:00"},
		{overnight, "2026-11-26 12:00", "2026-11-26 12:00"},
		{QuietHours{Start: "12:00", End: "13:30"}, "2026-11-26 12:45", "2026-11-26 13:30"},
		{QuietHours{}, "2026-11-26 03:00", "2026-11-26 03:00"},
	}
	for _, c := range cases {
		got := c.q.Defer(at(c.now), bkk)
		if !got.Equal(at(c.want)) {
			t.Errorf("%v at %s: got %s, want %s", c.q, c.now, got.In(bkk), c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	p := DefaultPreferences()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.Channels["gossip"] = []Channel{ChannelSMS}
	if err := p.Validate(); err == nil {
		t.Error("unknown category accepted")
	}
	p = DefaultPreferences()
	p.QuietHours = QuietHours{Start: "25:00", End: "07:00"}
	if err := p.Validate(); err == nil {
		t.Error("bad clock accepted")
	}
}

package timeliness_test

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/emersion/go-smtp"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
	"github.com/rfd-notify/rfd/internal/testkit/providertest"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/router"
)

func TestLastWeek(t *testing.T) {
	for _, tc := range []struct{ now, monday, sunday string }{
		{"2026-11-30T06:00:00Z", "2026-11-23", "2026-11-29"}, // a Monday
		{"2026-11-29T23:59:00Z", "2026-11-16", "2026-11-22"}, // a Sunday
		{"2026-11-25T12:00:00Z", "2026-11-16", "2026-11-22"},
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		m, s := timeliness.LastWeek(now)
		if m.Format(time.DateOnly) != tc.monday || s.Format(time.DateOnly) != tc.sunday {
			t.Errorf("LastWeek(%s) = %s..%s, want %s..%s", tc.now, m.Format(time.DateOnly), s.Format(time.DateOnly), tc.monday, tc.sunday)
		}
	}
}

// The weekly job stores last week's report once and its command goes
// through the outbox and the router to the worker's mailer, which e-mails
// it over SMTP once, however often the job runs or the command comes back.
func TestWeeklyReportMail(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		ctx := context.Background()
		seed(t, env, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
		now := func() time.Time { return time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC) }
		const to = "ops@hospital.example"
		topic := env.Config.TopicReportMail
		env.EnsureTopics(t, topic, env.Config.TopicPoison)

		srv := providertest.StartSMTP(t)
		client, err := email.New(email.Config{Host: "127.0.0.1", Port: srv.Port, TLS: email.TLSNone, From: "rfd@hospital.example"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		job := timeliness.NewWeeklyMail(env.DB, env.Outbox, topic, to, 30*time.Minute, now, env.Logger)
		for i, want := range []bool{true, false} {
			stored, err := job.Once(ctx)
			if err != nil || stored != want {
				t.Fatalf("run %d: stored=%v err=%v, want stored=%v", i+1, stored, err, want)
			}
		}

		mailer := timeliness.NewMailer(env.DB, client, now, env.Logger)
		rt := env.NewRouter(t)
		if err := rt.AddConsumer(router.Handler{Name: timeliness.MailConsumer, Topic: topic,
			ConsumerGroup: env.Config.ConsumerGroup(timeliness.MailConsumer), Handle: mailer.Handle}); err != nil {
			t.Fatal(err)
		}
		testenv.Run(t, rt)

		id := timeliness.MailID(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), to)
		testenv.Eventually(t, 30*time.Second, "report e-mailed and marked sent", func() (bool, string) {
			var status string
			var attempts int
			if err := env.DB.NewRaw(`SELECT status, attempts FROM report_mails WHERE id = ?`, id).Scan(ctx, &status, &attempts); err != nil {
				return false, err.Error()
			}
			return status == "sent" && len(srv.Messages()) == 1, status
		})

		got := srv.Messages()[0]
		if got.To != to || got.MessageID() != email.MessageIDFor(id) {
			t.Fatalf("mail to %q id %q, want %q %q", got.To, got.MessageID(), to, email.MessageIDFor(id))
		}
		parsed, err := mail.ReadMessage(strings.NewReader(string(got.Data)))
		if err != nil {
			t.Fatal(err)
		}
		if subj := parsed.Header.Get("Subject"); subj != "RFD Notify: critical-result timeliness 2026-11-23 to 2026-11-29 (2 breaches)" {
			t.Fatalf("subject %q", subj)
		}
		body := decodedParts(t, parsed)
		for _, want := range []string{"3 critical results, 1 acknowledged within the SLA (33.3%), 2 breaches",
			"BREACH notification n2 doctor d1", "BREACH notification n3 doctor d1", "escalation level 1", "not acknowledged", "<td>n3</td><td>d1</td>"} {
			if !strings.Contains(body, want) {
				t.Errorf("mail lacks %q:\n%s", want, body)
			}
		}

		// The command redelivered after the send: nothing is sent again.
		payload, _ := events.ReportMail{ReportMailID: id}.Encode()
		if err := mailer.Handle(message.NewMessage(id, payload)); err != nil {
			t.Fatal(err)
		}
		if n := len(srv.Messages()); n != 1 {
			t.Fatalf("%d mails after a redelivery, want 1", n)
		}
	})
}

// A recipient the SMTP server refuses (5xx) is a permanent failure: the
// router poisons the command with the server's reply as its reason, and the
// row keeps the error for the operator.
func TestReportMailRefused(t *testing.T) {
	env := testenv.New(t, testenv.SQLiteSQL)
	ctx := context.Background()
	srv := providertest.StartSMTP(t)
	const to = "gone@hospital.example"
	srv.Reject(to, 550, smtp.EnhancedCode{5, 1, 1}, "no such mailbox")
	client, err := email.New(email.Config{Host: "127.0.0.1", Port: srv.Port, TLS: email.TLSNone, From: "rfd@hospital.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	job := timeliness.NewWeeklyMail(env.DB, env.Outbox, env.Config.TopicReportMail, to, 30*time.Minute, func() time.Time { return now }, env.Logger)
	env.EnsureTopics(t, env.Config.TopicReportMail)
	if _, err := job.Once(ctx); err != nil {
		t.Fatal(err)
	}
	id := timeliness.MailID(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), to)
	payload, _ := events.ReportMail{ReportMailID: id}.Encode()
	err = timeliness.NewMailer(env.DB, client, nil, env.Logger).Handle(message.NewMessage(id, payload))
	if !msgerr.IsPermanent(err) || !strings.Contains(err.Error(), "550") {
		t.Fatalf("refused recipient: %v, want a permanent error naming the 550 reply", err)
	}
	var status, lastErr string
	if err := env.DB.NewRaw(`SELECT status, last_error FROM report_mails WHERE id = ?`, id).Scan(ctx, &status, &lastErr); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || !strings.Contains(lastErr, "no such mailbox") {
		t.Fatalf("row: %s %q", status, lastErr)
	}
	// An unknown id (say, a row removed by hand) is permanent too.
	payload, _ = events.ReportMail{ReportMailID: "ctr-nope"}.Encode()
	if err := timeliness.NewMailer(env.DB, client, nil, env.Logger).Handle(message.NewMessage("x", payload)); !msgerr.IsPermanent(err) {
		t.Fatalf("unknown id: %v", err)
	}
}

// decodedParts returns the text of every part of a multipart message, the
// quoted-printable decoded (mime/multipart does that).
func decodedParts(t *testing.T, m *mail.Message) string {
	t.Helper()
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	r := multipart.NewReader(m.Body, params["boundary"])
	var out strings.Builder
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub/kafkatest"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

// TestTraceChain runs `rfd serve` in process on PostgreSQL and Kafka (kfake
// over TCP) with real SMTP, spans recorded by an in-memory exporter. One
// API request posts a checkup event; its trace must run, parent to child:
// the API request, the outbox write, the checkup consumer (through the
// Kafka record's traceparent header), the outbox write of the
// send-notification command, the send-notification consumer and the SMTP
// provider call.
func TestTraceChain(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	mail := startMailServer(t)
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = pgtest.NewDatabase(t)
	cfg.Transport = config.TransportKafka
	cfg.KafkaBrokers = kafkatest.Start(t, 3)
	cfg.HTTPAddr = rfdbin.FreeAddr(t)
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.SQLPollInterval = 20 * time.Millisecond
	cfg.DeliveryPollInterval = 200 * time.Millisecond
	cfg.LogLevel = "error"
	cfg.SMTPHost, cfg.SMTPPort, cfg.SMTPTLS = "127.0.0.1", mail.port, "none"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serve, cleanup, err := initServe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		cleanup()
	})
	rfdbin.WaitHTTP(t, "http://"+cfg.HTTPAddr+"/readyz", 60*time.Second)

	keys, keysCleanup, err := initAPIKeys(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := keys.Create(ctx, "trace-test", []string{"events:user-created", "events:checkup"}, nil)
	keysCleanup()
	if err != nil {
		t.Fatal(err)
	}
	post := func(typ, ceID, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+cfg.HTTPAddr+"/v1/events/"+typ, strings.NewReader(body))
		req.Header.Set("X-API-Key", secret)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-id", ceID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/events/%s: %d %s", typ, resp.StatusCode, b)
		}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	post("user-created", "trace-uc", fmt.Sprintf(`{"external_user_id":"um-usr-trace","user_type":"referring_doctor","name":"Dr. Trace",
"email":"trace@clinic.example","locale":"en","time_zone":"UTC","active":true,"updated_at":%q}`, now))
	waitFor(t, 60*time.Second, "the doctor exists", func() bool {
		n, err := serve.DB.NewSelect().Table("doctors").Where("external_user_id = ?", "um-usr-trace").Count(ctx)
		return err == nil && n == 1
	})
	post("checkup-events", "trace-ce", fmt.Sprintf(`{"event_type":"result_available","checkup_id":"CHK-T-1","order_id":"ORD-T-1",
"patient":{"ref":"HN-T-1","display_name":"Synthetic Patient","birth_year":1970},
"referring_doctors":[{"external_user_id":"um-usr-trace","role":"primary"}],"occurred_at":%q,
"result":{"version":1,"status":"final","critical":false,"tests":[{"code":"GLU","name":"Glucose","value":"90","unit":"mg/dL","flag":"N"}]}}`, now))

	var chain []sdktrace.ReadOnlySpan
	waitFor(t, 90*time.Second, "the email sent and its trace complete", func() bool {
		if mail.count() == 0 {
			return false
		}
		chain = nil
		spans := exp.GetSpans().Snapshots()
		byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
		for _, s := range spans {
			byID[s.SpanContext().SpanID()] = s
		}
		for _, s := range spans {
			if s.Name() != "deliver email" {
				continue
			}
			for cur, ok := s, true; ok; cur, ok = byID[cur.Parent().SpanID()] {
				chain = append(chain, cur)
				if !cur.Parent().IsValid() {
					return true
				}
			}
		}
		return false
	})
	var names []string
	for i := len(chain) - 1; i >= 0; i-- {
		names = append(names, chain[i].Name())
	}
	want := []string{"POST ingestCheckupEvent", "outbox publish checkup-events", "consume checkup-events",
		"outbox publish send-notification", "consume send-notification", "deliver email"}
	if strings.Join(names, " > ") != strings.Join(want, " > ") {
		t.Fatalf("trace chain:\n  got  %s\n  want %s", strings.Join(names, " > "), strings.Join(want, " > "))
	}
	root := chain[len(chain)-1]
	for _, s := range chain {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %s is in another trace", s.Name())
		}
	}
	if root.SpanKind() != trace.SpanKindServer || chain[0].SpanKind() != trace.SpanKindClient {
		t.Errorf("root kind %v, provider call kind %v", root.SpanKind(), chain[0].SpanKind())
	}
	t.Logf("trace %s: %s", root.SpanContext().TraceID(), strings.Join(names, " > "))

	// The checkup event on Kafka carries the trace in its traceparent header.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.KafkaBrokers...), kgo.ConsumeTopics(cfg.TopicCheckupEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	var traceparent string
	for traceparent == "" && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					traceparent = string(h.Value)
				}
			}
		})
	}
	if !strings.Contains(traceparent, root.SpanContext().TraceID().String()) {
		t.Errorf("Kafka record traceparent %q does not carry trace %s", traceparent, root.SpanContext().TraceID())
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mailServer is a real SMTP server (go-smtp) on loopback counting mails.
type mailServer struct {
	port int
	mu   sync.Mutex
	n    int
}

func (m *mailServer) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

func (m *mailServer) NewSession(*smtp.Conn) (smtp.Session, error) { return mailSession{m}, nil }

type mailSession struct{ m *mailServer }

func (s mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s mailSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.n++
	s.m.mu.Unlock()
	return nil
}
func (s mailSession) Reset()        {}
func (s mailSession) Logout() error { return nil }

func startMailServer(t *testing.T) *mailServer {
	t.Helper()
	m := &mailServer{}
	srv := smtp.NewServer(m)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return m
}

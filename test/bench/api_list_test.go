package bench

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/migrations"
)

// BenchmarkNotificationsList measures GET /v1/notifications of the real API
// (real RS256 JWT auth, rate limiter, huma, bun, audit) on PostgreSQL,
// beside a bare net/http + pgxpool handler running the same SQL in the same
// run: the doctor lookup, the keyset query and the audit insert. A bare
// handler running only the keyset query is measured too, for reference. Settings:
//
//	RFD_BENCH_NOTIFICATIONS  notifications seeded (default 1000000)
//	RFD_BENCH_DOCTORS        doctors they are spread over (default 10000)
//	RFD_BENCH_REQUESTS       measured requests per scenario and side (default 20000: a p99 over 200 samples above it, not 50)
//
// Each scenario sends its requests from listConcurrency goroutines over
// loopback keep-alive connections, each request for a random doctor:
// "first" is the doctor's newest page of listLimit, "deep" the page whose
// cursor is ~90% down the doctor's list (the last full page when the
// doctor has fewer than 10 pages). The requests of a scenario are sent in
// listRounds rounds alternating between the service and the baseline, so a
// load that comes and goes on the machine weighs on both alike.
//
//	RFD_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/rfd_test?sslmode=disable \
//	go test ./test/bench -run '^$' -bench NotificationsList -benchtime 1x -timeout 30m
func BenchmarkNotificationsList(b *testing.B) {
	b.StopTimer()
	nNotes := envInt(b, "RFD_BENCH_NOTIFICATIONS", 1000000)
	nDocs := min(envInt(b, "RFD_BENCH_DOCTORS", 10000), nNotes)
	nReq := envInt(b, "RFD_BENCH_REQUESTS", 20000)
	ctx := context.Background()

	// The database: fresh, migrated, seeded set-based.
	dbURL := pgtest.NewDatabase(b)
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		b.Fatalf("open db: %v", err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if _, err := migrations.NewMigrator(db).Up(ctx); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	t0 := time.Now()
	seedNotifications(b, db, nDocs, nNotes)
	fmt.Printf("notifications-list: seeded %d notifications over %d doctors in %.1fs\n", nNotes, nDocs, time.Since(t0).Seconds())

	docs := listDoctors(nDocs, nNotes)
	for _, sc := range []struct {
		name   string
		cursor int64
	}{{"first", 0}, {"deep", docs[0].deepCursor}} {
		explainList(b, db, docs[0].id, sc.name, sc.cursor)
	}

	// The service: the real API server over the same database.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	svcURL := startService(b, dbURL, db, key)
	t0 = time.Now()
	signTokens(b, key, docs)
	fmt.Printf("notifications-list: signed %d RS256 tokens in %.1fs\n", len(docs), time.Since(t0).Seconds())

	// The baseline: a bare handler with pgxpool, same SQL, same pool size.
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	poolCfg.MaxConns = 20 // store.Open's MaxOpenConns
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		b.Fatalf("pgxpool: %v", err)
	}
	b.Cleanup(pool.Close)
	sameSrv := httptest.NewServer(baselineListHandler(pool, true))
	b.Cleanup(sameSrv.Close)
	bareSrv := httptest.NewServer(baselineListHandler(pool, false))
	b.Cleanup(bareSrv.Close)

	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 4 * listConcurrency, MaxIdleConnsPerHost: 4 * listConcurrency, DisableCompression: true},
	}
	b.Cleanup(client.CloseIdleConnections)

	svc := listTarget{name: "service", url: svcURL, auth: true}
	// The baseline: the service's SQL (doctor lookup, keyset query, audit
	// insert) from a bare handler. The bare keyset query alone is printed
	// beside it, for reference.
	base := listTarget{name: "baseline", url: sameSrv.URL, ext: true}
	bare := listTarget{name: "bare-query", url: bareSrv.URL}
	targets := []listTarget{base, svc, bare}

	// All answer the same page the same way.
	for _, deep := range []bool{false, true} {
		checkSamePage(b, client, svc, base, docs[len(docs)/2], deep)
		checkSamePage(b, client, svc, bare, docs[len(docs)/2], deep)
	}

	// Warm every side (connections, plans, caches), then measure.
	warm := min(nReq, 1000)
	for _, tg := range targets {
		for _, deep := range []bool{false, true} {
			runListLoad(b, client, tg, docs, deep, warm, 99)
		}
	}
	// Measure in rounds rotating the order, so that whatever else the
	// machine is doing weighs on every side alike.
	b.StartTimer()
	res := map[string]listResult{}
	for _, deep := range []bool{false, true} {
		runs := map[string]*listRun{}
		for round := range listRounds {
			for i := range targets {
				tg := targets[(round+i)%len(targets)]
				r := runListLoad(b, client, tg, docs, deep, max(nReq/listRounds, 1), uint64(round+1))
				if runs[tg.name] == nil {
					runs[tg.name] = &listRun{}
				}
				runs[tg.name].add(r)
			}
		}
		for name, r := range runs {
			page := "first"
			if deep {
				page = "deep"
			}
			res[name+" "+page] = r.result(name + " " + page)
		}
	}
	b.StopTimer()

	for _, k := range []string{"service first", "service deep", "baseline first", "baseline deep", "bare-query first", "bare-query deep"} {
		r := res[k]
		fmt.Printf("notifications-list: %-16s %6d req c=%d: %8.0f req/s  p50 %7.2fms  p99 %7.2fms\n",
			k, r.n, listConcurrency, r.rps, ms(r.p50), ms(r.p99))
	}
	sf, sd, bf, bd := res["service first"], res["service deep"], res["baseline first"], res["baseline deep"]
	qf, qd := res["bare-query first"], res["bare-query deep"]
	ratioFirst := float64(sf.p99) / float64(bf.p99)
	ratioDeep := float64(sd.p99) / float64(bd.p99)
	deepFirst := float64(sd.p99) / float64(sf.p99)
	fmt.Printf("notifications-list: p99 service/baseline (same SQL): first %.2fx, deep %.2fx (target <= 1.30x)\n", ratioFirst, ratioDeep)
	fmt.Printf("notifications-list: p99 service/bare keyset query alone: first %.2fx, deep %.2fx\n",
		float64(sf.p99)/float64(qf.p99), float64(sd.p99)/float64(qd.p99))
	fmt.Printf("notifications-list: p99 service deep/first: %.2fx (baseline %.2fx); rps service/baseline: first %.2fx, deep %.2fx\n",
		deepFirst, float64(bd.p99)/float64(bf.p99), sf.rps/bf.rps, sd.rps/bd.rps)

	b.ReportMetric(sf.rps, "svc-first-req/s")
	b.ReportMetric(sd.rps, "svc-deep-req/s")
	b.ReportMetric(ms(sf.p50), "svc-first-p50-ms")
	b.ReportMetric(ms(sf.p99), "svc-first-p99-ms")
	b.ReportMetric(ms(sd.p99), "svc-deep-p99-ms")
	b.ReportMetric(bf.rps, "base-first-req/s")
	b.ReportMetric(ms(bf.p99), "base-first-p99-ms")
	b.ReportMetric(ms(bd.p99), "base-deep-p99-ms")
	b.ReportMetric(ratioFirst, "p99-ratio-first")
	b.ReportMetric(ratioDeep, "p99-ratio-deep")
	b.ReportMetric(deepFirst, "svc-deep/first-p99")
}

const (
	listConcurrency = 16
	listRounds      = 10
	listLimit       = 20
	listIssuer      = "https://users.example/"
	listAudience    = "rfd-notify-bench"
)

// listDoctor is a seeded doctor: doctor i has the notifications
// i, i+D, i+2D, ... with seq 1, 2, 3, ...
type listDoctor struct {
	ext, id    string
	count      int64
	deepCursor int64 // seq < deepCursor is the deep page
	token      string
}

func listDoctorExt(i int) string { return fmt.Sprintf("bench-list-doc-%05d", i) }

func listDoctors(nDocs, nNotes int) []listDoctor {
	docs := make([]listDoctor, nDocs)
	for i := range docs {
		c := int64(nNotes / nDocs)
		if i < nNotes%nDocs {
			c++
		}
		// ~90% down the newest-first list, but a full page when it can be.
		cur := max(c/10, min(c, listLimit)) + 1
		docs[i] = listDoctor{ext: listDoctorExt(i), id: "bench-list-" + strconv.Itoa(i), count: c, deepCursor: cur}
	}
	return docs
}

// seedNotifications inserts the doctors and notifications with
// INSERT ... SELECT FROM generate_series, then ANALYZEs (VACUUM ANALYZE for
// the notifications).
func seedNotifications(b *testing.B, db *bun.DB, nDocs, nNotes int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	stmts := []string{
		`SET synchronous_commit = off`,
		fmt.Sprintf(`INSERT INTO doctors (id, external_user_id, name, licence_number, specialty, clinic, email, phone, locale, time_zone,
	active, notification_seq, profile_version, created_at, updated_at)
SELECT 'bench-list-' || i, 'bench-list-doc-' || lpad(i::text, 5, '0'), 'Dr. Bench ' || i, 'MD-' || i, 'Cardiology',
	'Sukhumvit Heart Clinic', 'doc' || i || '@clinic.example', '+66812345678', 'en', 'Asia/Bangkok',
	TRUE, (%[2]d / %[1]d) + CASE WHEN i < %[2]d %% %[1]d THEN 1 ELSE 0 END, now(), now(), now()
FROM generate_series(0, %[1]d - 1) AS i`, nDocs, nNotes),
		fmt.Sprintf(`INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data,
	checkup_id, result_version, order_id, source_event_id, send_at, created_at)
SELECT md5('bench-note-' || i)::uuid::text, 'bench-list-' || (i %% %[1]d), i / %[1]d + 1, 'bench-dedup-' || i,
	'result_available', 'results', 'normal',
	'Result available for Somchai Jaidee (PT-' || lpad(i::text, 7, '0') || ')',
	'Potassium for Somchai Jaidee: 4.1 mmol/L. The full result is in the portal.',
	jsonb_build_object('PatientName', 'Somchai Jaidee', 'PatientRef', 'PT-' || lpad(i::text, 7, '0'), 'TestName', 'Potassium'),
	'CHK-BENCH-' || lpad(i::text, 7, '0'), 1, 'ORD-BENCH-' || lpad(i::text, 7, '0'), 'ce-bench-' || i,
	timestamptz '2026-01-01 00:00:00+00' + (i / %[1]d) * interval '1 minute',
	timestamptz '2026-01-01 00:00:00+00' + (i / %[1]d) * interval '1 minute'
FROM generate_series(0, %[2]d - 1) AS i`, nDocs, nNotes),
		`ANALYZE doctors`,
		`VACUUM (ANALYZE) notifications`, // also sets hint bits, so autovacuum stays out of the measurement
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			b.Fatalf("seed: %v\n%s", err, s)
		}
	}
	// Best effort: load the table and its keyset index into the caches, so
	// that no scenario pays (or is spared) the cold reads of another.
	if _, err := conn.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_prewarm`); err == nil {
		_, err = conn.ExecContext(ctx, `SELECT pg_prewarm('notifications'), pg_prewarm('notifications_doctor_id_seq_key')`)
		if err != nil {
			b.Logf("pg_prewarm: %v", err)
		}
	} else {
		b.Logf("no pg_prewarm (%v): reading the table instead", err)
		if _, err := conn.ExecContext(ctx, `SELECT count(*), sum(length(title)) FROM notifications`); err != nil {
			b.Fatalf("warm: %v", err)
		}
	}
}

// explainList prints the plan of the list query, to show the keyset runs
// on the (doctor_id, seq) index.
func explainList(b *testing.B, db *bun.DB, doctorID, name string, cursor int64) {
	b.Helper()
	if cursor == 0 {
		cursor = int64(1) << 62
	}
	// doctorID is one of the seeded ids: safe to inline.
	q := strings.NewReplacer("$1", "'"+doctorID+"'", "$2", strconv.FormatInt(cursor, 10), "$3", strconv.Itoa(listLimit+1)).
		Replace("EXPLAIN " + listSQL)
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		b.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			b.Fatal(err)
		}
		plan = append(plan, strings.TrimSpace(l))
	}
	fmt.Printf("notifications-list: plan (%s page): %s\n", name, strings.Join(plan, " | "))
}

// startService builds the real API server as api/helpers_test.go does and
// serves it on loopback.
func startService(b *testing.B, dbURL string, db *bun.DB, key *rsa.PrivateKey) string {
	b.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	pemPath := filepath.Join(b.TempDir(), "jwt.pem")
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(nil)
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	cfg.DatabaseURL = dbURL
	cfg.Transport = config.TransportSQL
	cfg.LogLevel = "warn"
	cfg.JWTPublicKeyFile = pemPath
	cfg.JWTIssuer = listIssuer
	cfg.JWTAudience = listAudience
	cfg.JWTLeeway = 0
	cfg.APIRatePerKey = 1e9
	cfg.APIRatePerDoctor = 1e9
	if err := cfg.Validate(); err != nil {
		b.Fatalf("config: %v", err)
	}
	logger, err := logging.New(io.Discard, cfg.LogLevel, "text")
	if err != nil {
		b.Fatal(err)
	}
	// The services the roles give the API, built as the roles build them.
	authn, err := roles.NewAuthenticator(cfg, db, logger)
	if err != nil {
		b.Fatalf("authenticator: %v", err)
	}
	ps, err := roles.NewSQLPubSub(db, cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	ob := roles.NewOutbox(cfg, ps)
	srv, err := api.NewServer(api.Deps{Config: cfg, DB: db, Logger: logger, Auth: authn, Outbox: ob,
		Notifier: roles.NewNotifier(cfg, ob), Poison: roles.NewPoison(db, ob)}, &health.Checks{}, prometheus.NewRegistry())
	if err != nil {
		b.Fatalf("api server: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	return ts.URL
}

// signTokens gives each doctor an RS256 token, signed in parallel.
func signTokens(b *testing.B, key *rsa.PrivateKey, docs []listDoctor) {
	b.Helper()
	now := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(docs) {
					return
				}
				s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
					"iss": listIssuer, "aud": listAudience, "sub": docs[i].ext,
					"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(3 * time.Hour).Unix(),
				}).SignedString(key)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				docs[i].token = s
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		b.Fatalf("sign: %v", *p)
	}
}

// listSQL is the service's list query (api.listNotifications without
// filters): the doctor's notifications before the cursor, newest first,
// one more than the page to know whether another follows.
const listSQL = `SELECT id, seq, type, category, priority, title, state, state_reason, checkup_id, order_id, on_behalf_of,
	created_at, read_at, acknowledged_at
FROM notifications WHERE doctor_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`

// baselineListHandler is GET /?doctor=ID[&before=SEQ]: the same keyset
// query with pgx, encoded as the API's page.
// doctorSQL is the service's doctor lookup of every doctor request.
var doctorSQL = strings.Replace(store.DoctorGetByExternalIDQuery, "?", "$1", 1)

// auditSQL is the audit row the service writes for a list read.
const auditSQL = `INSERT INTO audit_log (occurred_at, actor_type, actor_id, action, object_type, object_id, outcome, source_ip, user_agent, detail)
VALUES ($1, 'doctor', $2, 'notification.list', 'notification', '', 'success', $3, $4, $5)`

// baselineListHandler is GET /?doctor=EXT[&before=SEQ]: the service's SQL
// run with pgx by a bare net/http handler, encoded as the API's page. With
// sameSQL it runs every statement the service runs for the request: the
// doctor lookup by external user id (401/403 as the service would), the
// keyset query, and the audit insert (each request its own INSERT, in
// autocommit). Without, only the keyset query, for the doctor's id.
func baselineListHandler(pool *pgxpool.Pool, sameSQL bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doctor := r.URL.Query().Get("doctor")
		before := int64(1) << 62
		if s := r.URL.Query().Get("before"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				http.Error(w, "bad before", http.StatusBadRequest)
				return
			}
			before = v
		}
		ctx := r.Context()
		var doc domain.Doctor
		if sameSQL {
			err := pool.QueryRow(ctx, doctorSQL, doctor).Scan(&doc.ID, &doc.ExternalUserID, &doc.Name, &doc.LicenceNumber, &doc.Specialty,
				&doc.Clinic, &doc.Email, &doc.Phone, &doc.Locale, &doc.TimeZone, &doc.Active, &doc.NotificationSeq, &doc.ProfileVersion,
				&doc.CreatedAt, &doc.UpdatedAt)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				http.Error(w, "no such doctor", http.StatusUnauthorized)
				return
			case err != nil:
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			case !doc.Active:
				http.Error(w, "inactive", http.StatusForbidden)
				return
			}
			doctor = doc.ID
		}
		rows, err := pool.Query(ctx, listSQL, doctor, before, listLimit+1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer rows.Close()
		page := api.NotificationPage{Items: make([]api.NotificationSummary, 0, listLimit)}
		var last int64
		for rows.Next() {
			var n api.NotificationSummary
			var category, priority string
			if err := rows.Scan(&n.ID, &n.Seq, &n.Type, &category, &priority, &n.Title, &n.State, &n.StateReason,
				&n.CheckupID, &n.OrderID, &n.OnBehalfOf, &n.CreatedAt, &n.ReadAt, &n.AcknowledgedAt); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if len(page.Items) == listLimit {
				page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte("n1\x1f" + strconv.FormatInt(last, 10)))
				break
			}
			n.Category, n.Priority = domain.Category(category), domain.Priority(priority)
			n.CreatedAt = n.CreatedAt.UTC()
			page.Items = append(page.Items, n)
			last = n.Seq
		}
		if err := rows.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		rows.Close()
		if sameSQL && len(page.Items) > 0 {
			ids := make([]string, len(page.Items))
			for i, it := range page.Items {
				ids[i] = it.ID
			}
			detail, err := json.Marshal(map[string]any{"ids": ids})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ip, _, _ := strings.Cut(r.RemoteAddr, ":")
			if _, err := pool.Exec(ctx, auditSQL, time.Now().UTC(), doc.ID, ip, r.UserAgent(), detail); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	})
}

type listTarget struct {
	name string
	url  string
	auth bool // the service: token + opaque cursor; the baselines: ?doctor=&before=
	// ext: the baseline looks the doctor up by external user id.
	ext bool
}

func (tg listTarget) request(d *listDoctor, deep bool) (*http.Request, error) {
	var u string
	if tg.auth {
		u = tg.url + "/v1/notifications?limit=" + strconv.Itoa(listLimit)
		if deep {
			u += "&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("n1\x1f"+strconv.FormatInt(d.deepCursor, 10)))
		}
	} else {
		doctor := d.id
		if tg.ext {
			doctor = d.ext
		}
		u = tg.url + "/?doctor=" + doctor
		if deep {
			u += "&before=" + strconv.FormatInt(d.deepCursor, 10)
		}
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if tg.auth {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	return req, nil
}

func fetchPage(client *http.Client, tg listTarget, d *listDoctor, deep bool) (api.NotificationPage, error) {
	var page api.NotificationPage
	req, err := tg.request(d, deep)
	if err != nil {
		return page, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return page, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return page, err
	}
	if resp.StatusCode != http.StatusOK {
		return page, fmt.Errorf("%s: %s: %s", tg.name, resp.Status, body)
	}
	return page, json.Unmarshal(body, &page)
}

// checkSamePage fails unless the service and the baseline answer d's page
// with the same items, the expected seqs, and the same next cursor.
func checkSamePage(b *testing.B, client *http.Client, svc, base listTarget, d listDoctor, deep bool) {
	b.Helper()
	sp, err := fetchPage(client, svc, &d, deep)
	if err != nil {
		b.Fatal(err)
	}
	bp, err := fetchPage(client, base, &d, deep)
	if err != nil {
		b.Fatal(err)
	}
	top := d.count
	if deep {
		top = d.deepCursor - 1
	}
	want := int(min(top, listLimit))
	if len(sp.Items) != want || len(bp.Items) != want || (want > 0 && sp.Items[0].Seq != top) {
		b.Fatalf("deep=%v: service %d items, baseline %d, want %d from seq %d", deep, len(sp.Items), len(bp.Items), want, top)
	}
	for i := range sp.Items {
		s, bs := sp.Items[i], bp.Items[i]
		if s.ID != bs.ID || s.Seq != bs.Seq || s.Title != bs.Title || !s.CreatedAt.Equal(bs.CreatedAt) {
			b.Fatalf("deep=%v item %d: service %+v, baseline %+v", deep, i, s, bs)
		}
	}
	if sp.NextCursor != bp.NextCursor {
		b.Fatalf("deep=%v: next cursor: service %q, baseline %q", deep, sp.NextCursor, bp.NextCursor)
	}
}

type listResult struct {
	name     string
	n        int
	rps      float64
	p50, p99 time.Duration
}

// runListLoad sends n requests to tg from listConcurrency goroutines, each
// for a random doctor, and returns the rate and latency percentiles.
// listRun is the latencies and time of some rounds of one scenario.
type listRun struct {
	lat     []time.Duration
	elapsed time.Duration
}

func (r *listRun) add(o listRun) {
	r.lat = append(r.lat, o.lat...)
	r.elapsed += o.elapsed
}

func (r *listRun) result(name string) listResult {
	n := len(r.lat)
	slices.Sort(r.lat)
	return listResult{
		name: name,
		n:    n,
		rps:  float64(n) / r.elapsed.Seconds(),
		p50:  r.lat[(n-1)*50/100],
		p99:  r.lat[(n*99+99)/100-1],
	}
}

// runListLoad sends n requests to tg from listConcurrency goroutines.
func runListLoad(b *testing.B, client *http.Client, tg listTarget, docs []listDoctor, deep bool, n int, seed uint64) listRun {
	b.Helper()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for w := range listConcurrency {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(seed, uint64(w)))
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				d := &docs[rng.IntN(len(docs))]
				req, err := tg.request(d, deep)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				t := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", tg.name, resp.Status)
					}
				}
				lat[i] = time.Since(t)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := failed.Load(); p != nil {
		b.Fatalf("%s load: %v", tg.name, *p)
	}
	return listRun{lat: lat, elapsed: elapsed}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package e2e

import (
	"database/sql"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
)

// TestCronReplicasSubprocess runs two `rfd cron` processes against one
// PostgreSQL database, every job due each second. Each (job, slot) is run
// by exactly one of them; when the replica doing the work is killed with
// SIGKILL, the other carries on from the next slot, so no slot is lost.
func TestCronReplicasSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes for ~10s")
	}
	bin := rfdBinary(t) // before runRFD's 30s timeout starts
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"RFD_DATABASE_URL=" + dbURL,
		"RFD_SHUTDOWN_TIMEOUT=10s",
		"RFD_LOG_LEVEL=warn",
	}
	jobs := map[string]string{
		"scheduled-notifications": "RFD_CRON_SCHEDULED_NOTIFICATIONS", "escalations": "RFD_CRON_ESCALATIONS",
		"stuck-deliveries": "RFD_CRON_STUCK_DELIVERIES", "digests": "RFD_CRON_DIGESTS",
		"weekly-summary": "RFD_CRON_WEEKLY_SUMMARY", "retention": "RFD_CRON_RETENTION",
	}
	for _, v := range jobs {
		env = append(env, v+"=@every 1s")
	}
	if code, _, stderr := runRFD(t, env, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: exit %d: %s", code, stderr)
	}

	start := func(instance string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(bin, "cron")
		cmd.Dir = t.TempDir()
		cmd.Env = cleanEnv(append(env, "RFD_INSTANCE_ID="+instance, "RFD_ADMIN_ADDR="+freeAddr(t))...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, &stderr
	}
	a, aErr := start("cron-a")
	b, bErr := start("cron-b")

	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	claimsBy := func() map[string]int {
		t.Helper()
		rows, err := db.Query(`SELECT instance, COUNT(*) FROM cron_runs GROUP BY instance`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var inst string
			var n int
			if err := rows.Scan(&inst, &n); err != nil {
				t.Fatal(err)
			}
			out[inst] = n
		}
		return out
	}

	// Five seconds of slots, and longer should the replicas be slow to
	// start (a loaded CI machine): the kill must land on a replica that
	// has run slots, and the checks below want at least 8 slots a job, so
	// wait for about 4 of each of the six jobs before it.
	time.Sleep(5 * time.Second)
	before := claimsBy()
	for deadline := time.Now().Add(30 * time.Second); before["cron-a"]+before["cron-b"] < 4*len(jobs) && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		before = claimsBy()
	}
	// Kill the replica that has done most of the work, mid-stride.
	victim, survivor, survivorErr, victimName := a, b, bErr, "cron-a"
	if before["cron-b"] > before["cron-a"] {
		victim, survivor, survivorErr, victimName = b, a, aErr, "cron-b"
	}
	killedAt := time.Now().UTC()
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	time.Sleep(5 * time.Second)
	termAt := time.Now().UTC()
	if err := survivor.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := survivor.Wait(); err != nil {
		t.Fatalf("survivor exit: %v\n%s", err, survivorErr.String())
	}
	after := claimsBy()
	t.Logf("claims before the kill %v, at the end %v (killed %s at %s)", before, after, victimName, killedAt.Format(time.TimeOnly))
	if len(after) != 2 {
		t.Fatalf("claims by %v: want both replicas to have run slots", after)
	}

	for job := range jobs {
		rows, err := db.Query(`SELECT slot, instance, status FROM cron_runs WHERE job = $1 ORDER BY slot`, job)
		if err != nil {
			t.Fatal(err)
		}
		var slots []time.Time
		by := map[string]int{}
		running := 0
		for rows.Next() {
			var slot time.Time
			var inst, status string
			if err := rows.Scan(&slot, &inst, &status); err != nil {
				t.Fatal(err)
			}
			slots = append(slots, slot)
			by[inst]++
			switch status {
			case "ok":
			case "running":
				// Only a run the SIGKILL cut short may stay unfinished.
				if inst != victimName {
					t.Errorf("%s %s: %s left running by the survivor", job, slot.Format(time.TimeOnly), inst)
				}
				running++
			case "interrupted":
				// Only the survivor's last run, stopped by its SIGTERM.
				if inst == victimName || slot.Before(termAt.Add(-2*time.Second)) {
					t.Errorf("%s %s: interrupted by %s, SIGTERM at %s", job, slot.Format(time.TimeOnly), inst, termAt.Format(time.TimeOnly))
				}
			default:
				t.Errorf("%s %s: status %s", job, slot.Format(time.TimeOnly), status)
			}
		}
		rows.Close()
		sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
		// Every second from the first slot to the last has its row: the
		// survivor took over without losing a slot.
		if len(slots) < 8 {
			t.Errorf("%s: %d slots in ~10s, want at least 8", job, len(slots))
			continue
		}
		for i := 1; i < len(slots); i++ {
			if gap := slots[i].Sub(slots[i-1]); gap != time.Second {
				t.Errorf("%s: %s after %s: gap %s", job, slots[i].Format(time.TimeOnly), slots[i-1].Format(time.TimeOnly), gap)
			}
		}
		last := slots[len(slots)-1]
		if !last.After(killedAt.Add(2 * time.Second)) {
			t.Errorf("%s: last slot %s, killed at %s: the survivor did not carry on", job, last.Format(time.TimeOnly), killedAt.Format(time.TimeOnly))
		}
		t.Logf("%s: %d slots, each once, by %v (%d cut short by the kill)", job, len(slots), by, running)
	}
	if t.Failed() {
		t.Logf("victim stderr:\n%s", map[bool]string{true: aErr.String(), false: bErr.String()}[victimName == "cron-a"])
	}
}

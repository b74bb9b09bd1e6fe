// Package bench holds the service's throughput benchmarks: the numbers later
// performance work compares against.
//
// BenchmarkCheckupEvents pushes RFD_BENCH_EVENTS (default 50,000) checkup
// events through the real checkup-events consumer on PostgreSQL + Kafka
// (kfake, 12 partitions), and in the same run through a hand-written
// baseline pipeline (franz-go consumer group + pgx, one transaction per
// event: inbox, checkup, notification and outbox rows; test/bench/baseline,
// shared with the performance harness test/bench/harness), and prints both
// rates and their ratio:
//
//	RFD_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/rfd_test?sslmode=disable \
//	go test ./test/bench -run '^$' -bench CheckupEvents -benchtime 1x -timeout 30m
//
// After the service, the same events go through a third pipeline,
// test/bench/baseline's same-work pipeline: franz-go + pgx again, one
// transaction per event, doing by hand every read and write the service's
// consumer does for these events on the service's own schema (nine rows
// and a sequence update where the baseline writes four rows), without the
// service's schema validation, templates or outbox relay. It is printed
// beside the ratio, not instead of it: it tells how much of the gap to the
// baseline is the work asked of the consumer and how much is the service's
// way of doing it.
//
// All sides start from a full topic: the events are produced before the
// clock starts, and the clock stops when the consumer's inbox holds a row
// for every event (polled with count(*) every 100ms, which shows up in the
// inbox's "rows read" diagnostics). The service run then checks one checkup,
// one notification and two deliveries per event.
//
// Settings: RFD_BENCH_EVENTS (default 50000), RFD_BENCH_DOCTORS (referring
// doctors the events are spread over, default 1000), and
// RFD_BENCH_SERVICE_CPUPROFILE=FILE for a CPU profile of the service's
// timed section alone (go tool pprof bench.test FILE; build the binary with
// go test -c ./test/bench). Besides the rates, each run prints the CPU per event
// of this process and of PostgreSQL, the database's commits and rows per
// event, the forwarder's progress, and the tables that read the most rows:
// on a shared machine the rates follow the load, the per-event costs much
// less.
package bench

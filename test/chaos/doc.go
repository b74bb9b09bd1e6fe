// Package chaos holds the crash and fault runs of the service: its roles run
// as real `rfd` subprocesses against PostgreSQL and a Kafka broker (kfake in
// the test process, on loopback TCP) and real provider servers, while the
// test kills, restarts or starves them; the chaos/ledger checker then
// compares what was sent with what the database, the topics and the
// providers hold.
//
// The short forms run in `go test ./chaos`; RFD_CHAOS_LONG=1 runs the long
// forms, RFD_CHAOS_EVENTS overrides the event count. See the README.
package chaos

package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
)

// poisonCmd is `rfd poison list|show|replay|discard|export`: what the
// router poisoned, for operators. Payloads are shown with patient data
// masked unless --reveal, which is audited; so is every replay and discard.
func poisonCmd(inj Injectors, load func(*cobra.Command) (config.Config, error), stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "poison list|show|replay|discard|export",
		Short: "List, inspect, replay, discard or export poisoned messages",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("poison needs one of: list, show, replay, discard, export")}
		},
	}
	manager := func(cmd *cobra.Command) (*roles.PoisonManager, func(), error) {
		if inj.Poison == nil {
			return nil, nil, errors.New("poison: this build has no poison manager")
		}
		cfg, err := load(cmd)
		if err != nil {
			return nil, nil, err
		}
		return inj.Poison(cmd.Context(), cfg)
	}

	var f poison.Filter
	var since time.Duration
	filterFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&f.Topic, "topic", "", "only messages of this original topic")
		c.Flags().StringVar(&f.Reason, "reason", "", "permanent or exhausted (the poison class), or text the reason contains")
		c.Flags().StringVar(&f.State, "state", "", "pending, replayed or discarded")
		c.Flags().DurationVar(&since, "since", 0, "only messages poisoned within this long, e.g. 24h")
	}
	filter := func() (poison.Filter, error) {
		out := f
		if since < 0 {
			return out, usageError{errors.New("--since must be positive")}
		}
		if since > 0 {
			out.Since = time.Now().Add(-since)
		}
		if err := out.Validate(); err != nil {
			return out, usageError{err}
		}
		return out, nil
	}

	var limit int
	list := &cobra.Command{
		Use:   "list [--topic T] [--reason R] [--since D] [--state S]",
		Short: "List poisoned messages, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flt, err := filter()
			if err != nil {
				return err
			}
			flt.Limit = limit
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			rows, err := m.List(cmd.Context(), flt)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			_, _ = fmt.Fprintln(w, "ID\tTOPIC\tHANDLER\tCLASS\tSTATE\tCOUNT\tATTEMPTS\tFIRST SEEN\tLAST SEEN\tREASON")
			for _, r := range rows {
				_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Topic, r.Handler, r.Class, r.State,
					r.TimesPoisoned, r.Attempts, r.FirstSeenAt.UTC().Format(time.RFC3339), r.LastSeenAt.UTC().Format(time.RFC3339), oneLine(r.Reason, 80))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%d message(s)\n", len(rows))
			return err
		},
	}
	filterFlags(list)
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many rows")

	var reveal bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one poisoned message; patient data is masked unless --reveal (audited)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("poison show needs exactly one id (see rfd poison list)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			msg, err := m.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			raw, err := msg.RawPayload()
			if err != nil {
				return err
			}
			if reveal {
				if err := m.AuditReveal(cmd.Context(), operator(), msg.ID, map[string]any{"via": "cli show"}); err != nil {
					return err
				}
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
			_, _ = fmt.Fprintf(w, "id:\t%s\n", msg.ID)
			_, _ = fmt.Fprintf(w, "message id:\t%s\n", msg.MessageID)
			_, _ = fmt.Fprintf(w, "topic:\t%s\n", msg.Topic)
			_, _ = fmt.Fprintf(w, "handler:\t%s\n", msg.Handler)
			_, _ = fmt.Fprintf(w, "class:\t%s\n", msg.Class)
			_, _ = fmt.Fprintf(w, "reason:\t%s\n", msg.Reason)
			_, _ = fmt.Fprintf(w, "attempts:\t%d\n", msg.Attempts)
			_, _ = fmt.Fprintf(w, "times poisoned:\t%d\n", msg.TimesPoisoned)
			_, _ = fmt.Fprintf(w, "first seen:\t%s\n", msg.FirstSeenAt.UTC().Format(time.RFC3339))
			_, _ = fmt.Fprintf(w, "last seen:\t%s\n", msg.LastSeenAt.UTC().Format(time.RFC3339))
			_, _ = fmt.Fprintf(w, "state:\t%s\n", msg.State)
			if msg.StateChangedAt != nil {
				_, _ = fmt.Fprintf(w, "state changed:\t%s by %s: %s\n", msg.StateChangedAt.UTC().Format(time.RFC3339), msg.StateChangedBy, msg.StateReason)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			_, _ = fmt.Fprintln(stdout, "metadata:")
			for _, k := range sortedKeys(msg.Metadata) {
				_, _ = fmt.Fprintf(stdout, "  %s: %s\n", k, msg.Metadata[k])
			}
			label := "payload (patient data masked; --reveal shows it, audited):"
			if reveal {
				label = "payload (revealed, audited):"
			}
			_, err = fmt.Fprintf(stdout, "%s\n%s\n", label, poison.Pretty(raw, reveal))
			return err
		},
	}
	show.Flags().BoolVar(&reveal, "reveal", false, "show the payload unmasked (written to the audit log)")

	var (
		all    bool
		dryRun bool
		why    string
	)
	replay := &cobra.Command{
		Use:   "replay ID… | --all --topic T [--dry-run]",
		Short: "Publish pending messages back to their original topic through the outbox, with their original message id",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usageError{errors.New("poison replay needs ids, or --all with --topic")}
			}
			if all && f.Topic == "" {
				return usageError{errors.New("poison replay --all needs --topic")}
			}
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			var out []poison.Outcome
			if all {
				out, err = m.ReplayAll(cmd.Context(), operator(), f.Topic, why, dryRun)
			} else {
				out, err = m.Replay(cmd.Context(), operator(), args, why, dryRun)
			}
			if werr := printOutcomes(stdout, out); werr != nil && err == nil {
				err = werr
			}
			return err
		},
	}
	replay.Flags().BoolVar(&all, "all", false, "every pending message of --topic")
	replay.Flags().StringVar(&f.Topic, "topic", "", "the original topic (with --all)")
	replay.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be replayed, change nothing")
	replay.Flags().StringVar(&why, "reason", "", "why, for the audit log")

	discard := &cobra.Command{
		Use:   "discard ID… --reason \"…\"",
		Short: "Mark pending messages discarded, with a reason (audited)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("poison discard needs at least one id")}
			}
			if strings.TrimSpace(why) == "" {
				return usageError{errors.New("poison discard needs --reason")}
			}
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			out, err := m.Discard(cmd.Context(), operator(), args, why, dryRun)
			if werr := printOutcomes(stdout, out); werr != nil && err == nil {
				err = werr
			}
			return err
		},
	}
	discard.Flags().StringVar(&why, "reason", "", "why the messages are discarded (required, audited)")
	discard.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be discarded, change nothing")

	var to string
	export := &cobra.Command{
		Use:   "export --to FILE.jsonl [--topic T] [--reason R] [--since D] [--state S] [--reveal]",
		Short: "Write poisoned messages to a JSON Lines file; payloads masked unless --reveal (audited)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return usageError{errors.New("poison export needs --to FILE")}
			}
			flt, err := filter()
			if err != nil {
				return err
			}
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			if reveal {
				if err := m.AuditReveal(cmd.Context(), operator(), "", map[string]any{"via": "cli export", "file": to}); err != nil {
					return err
				}
			}
			file, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("poison export: %w", err)
			}
			n, err := m.Export(cmd.Context(), file, flt, reveal)
			if cerr := file.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("poison export: %w", cerr)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "exported %d message(s) to %s\n", n, to)
			return err
		},
	}
	filterFlags(export)
	export.Flags().StringVar(&to, "to", "", "the file to write (created or truncated, mode 0600)")
	export.Flags().BoolVar(&reveal, "reveal", false, "write payloads unmasked (written to the audit log)")

	cmd.AddCommand(list, show, replay, discard, export)
	return cmd
}

// operator is the audit actor of the CLI: the OS user running it.
func operator() poison.Actor {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, _ := os.Hostname()
	return poison.Actor{Type: "operator", ID: name, UserAgent: "rfd-cli@" + host}
}

func printOutcomes(w io.Writer, out []poison.Outcome) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tTOPIC\tRESULT\tDETAIL")
	for _, o := range out {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.ID, o.Topic, o.Result, o.Detail)
	}
	return tw.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

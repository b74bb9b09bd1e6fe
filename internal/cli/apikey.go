package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
)

// scopeHelp lists the scopes with what each grants, one a line.
func scopeHelp() string {
	var b strings.Builder
	for _, s := range auth.ScopeCatalog {
		fmt.Fprintf(&b, "  %-22s %s\n", s.Name, s.Description)
	}
	b.WriteString("\nevents:write is retired: keys that have it may still send checkup and order-history events, nothing else.")
	return b.String()
}

// apikeyCmd is `rfd apikey create|revoke|list`: the API keys of
// integrators and operators on the configured database. A key is printed
// once, when it is created; only its hash is stored.
func apikeyCmd(inj Injectors, load func(*cobra.Command) (config.Config, error), stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey create|revoke|list",
		Short: "Create, revoke or list the API keys of integrators and operators",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("apikey needs one of: create, revoke, list")}
		},
	}
	manager := func(cmd *cobra.Command) (*roles.APIKeyManager, func(), error) {
		if inj.APIKeys == nil {
			return nil, nil, errors.New("apikey: this build has no API-key manager")
		}
		cfg, err := load(cmd)
		if err != nil {
			return nil, nil, err
		}
		return inj.APIKeys(cmd.Context(), cfg)
	}

	var (
		name    string
		scopes  []string
		expires time.Duration
	)
	create := &cobra.Command{
		Use:   "create --name NAME --scopes SCOPE[,SCOPE…] [--expires DURATION]",
		Short: "Create an API key and print it (shown this once). Scopes: " + strings.Join(auth.Scopes, ", "),
		Long:  "Create an API key and print it (shown this once). Give it only the scopes its holder needs:\n\n" + scopeHelp(),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" {
				return usageError{errors.New("apikey create: --name is required")}
			}
			if len(scopes) == 0 {
				return usageError{fmt.Errorf("apikey create: --scopes is required (some of %s)", strings.Join(auth.Scopes, ", "))}
			}
			if expires < 0 {
				return usageError{errors.New("apikey create: --expires must be positive")}
			}
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			var expiresAt *time.Time
			if expires > 0 {
				t := time.Now().Add(expires).UTC()
				expiresAt = &t
			}
			secret, key, err := m.Create(cmd.Context(), name, scopes, expiresAt)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
			_, _ = fmt.Fprintf(w, "id:\t%s\n", key.ID)
			_, _ = fmt.Fprintf(w, "name:\t%s\n", key.Name)
			_, _ = fmt.Fprintf(w, "scopes:\t%s\n", strings.Join(key.Scopes(), ","))
			_, _ = fmt.Fprintf(w, "expires:\t%s\n", timeOrNever(key.ExpiresAt))
			_, _ = fmt.Fprintf(w, "key:\t%s\n", secret)
			if err := w.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, "Store the key now: it is shown only this once and cannot be recovered.")
			return err
		},
	}
	create.Flags().StringVar(&name, "name", "", "who or what uses the key, e.g. \"lab integration\"")
	create.Flags().StringSliceVar(&scopes, "scopes", nil, "comma-separated scopes: "+strings.Join(auth.Scopes, ", "))
	create.Flags().DurationVar(&expires, "expires", 0, "validity, e.g. 720h (default: no expiry)")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key: it is refused from now on",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("apikey revoke needs exactly one key id (see rfd apikey list)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			ok, err := m.Revoke(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("apikey revoke: no live API key with id %q", args[0])
			}
			_, err = fmt.Fprintln(stdout, "revoked", args[0])
			return err
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the API keys (never the keys themselves), newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, cleanup, err := manager(cmd)
			if err != nil {
				return err
			}
			defer cleanup()
			keys, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			_, _ = fmt.Fprintln(w, "ID\tNAME\tPREFIX\tSCOPES\tSTATUS\tCREATED\tEXPIRES\tLAST USED")
			for _, k := range keys {
				_, _ = fmt.Fprintf(w, "%s\t%s\t%s…\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, strings.Join(k.Scopes(), ","),
					keyStatus(k, now), k.CreatedAt.UTC().Format(time.RFC3339), timeOrNever(k.ExpiresAt), timeOrDash(k.LastUsedAt))
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(create, revoke, list)
	return cmd
}

func keyStatus(k auth.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	default:
		return "active"
	}
}

func timeOrNever(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

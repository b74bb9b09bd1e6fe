// Command rfd is RFD Notify: one binary whose roles are the service's
// deployments. `rfd serve` (the default) runs them all in one process on an
// embedded SQLite file.
package main

import (
	"os"

	"github.com/rfd-notify/rfd/internal/cli"
)

//go:generate go tool wire

func main() {
	os.Exit(cli.Execute(cli.Injectors{
		Serve:   initServe,
		API:     initAPI,
		Consume: initConsume,
		Worker:  initWorker,
		Cron:    initCron,
		Migrate: initMigrate,
		APIKeys: initAPIKeys,
		Ops:     initOps,
		Poison:  initPoison,
		Publish: initPublish,
	}, os.Args[1:], os.Stdout, os.Stderr))
}

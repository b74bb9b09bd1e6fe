//go:build wireinject

package main

import (
	"context"

	"github.com/google/wire"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
)

// Each role's injector names the provider sets of what that role runs
// (internal/roles/wire.go); serve runs everything.

func initServe(ctx context.Context, cfg config.Config) (*roles.Serve, func(), error) {
	wire.Build(roles.ServeBaseSet, roles.RouterSet, roles.ServicesSet, roles.APISet, roles.ServeMetrics,
		roles.SendersSet, roles.WorkerSet, roles.CronSet, roles.NewServe)
	return nil, nil, nil
}

func initAPI(ctx context.Context, cfg config.Config) (*roles.API, func(), error) {
	wire.Build(roles.BaseSet, roles.RouterSet, roles.ServicesSet, roles.APISet, roles.NoPublicMetrics, roles.NewAPI)
	return nil, nil, nil
}

func initConsume(ctx context.Context, cfg config.Config, name roles.ConsumerName) (*roles.Consumer, func(), error) {
	wire.Build(roles.BaseSet, roles.RouterSet, roles.ServicesSet, roles.ConsumerSet, roles.NewConsumer)
	return nil, nil, nil
}

func initWorker(ctx context.Context, cfg config.Config) (*roles.Worker, func(), error) {
	wire.Build(roles.BaseSet, roles.RouterSet, roles.ServicesSet, roles.WorkerSet, roles.NewWorker)
	return nil, nil, nil
}

func initCron(ctx context.Context, cfg config.Config) (*roles.Cron, func(), error) {
	wire.Build(roles.BaseSet, roles.ServicesSet, roles.CronSet, roles.NewCron)
	return nil, nil, nil
}

func initMigrate(ctx context.Context, cfg config.Config, create roles.CreateDatabase) (*roles.Migrate, func(), error) {
	wire.Build(roles.MigrateSet)
	return nil, nil, nil
}

func initAPIKeys(ctx context.Context, cfg config.Config) (*roles.APIKeyManager, func(), error) {
	wire.Build(roles.APIKeysSet)
	return nil, nil, nil
}

func initOps(ctx context.Context, cfg config.Config) (*roles.Ops, func(), error) {
	wire.Build(roles.OpsSet)
	return nil, nil, nil
}

func initPoison(ctx context.Context, cfg config.Config) (*roles.PoisonManager, func(), error) {
	wire.Build(roles.PoisonSet)
	return nil, nil, nil
}

func initPublish(ctx context.Context, cfg config.Config) (*roles.EventPublisher, func(), error) {
	wire.Build(roles.PublishSet)
	return nil, nil, nil
}

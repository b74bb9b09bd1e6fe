//go:build wireinject

package main

import (
	"context"

	"github.com/google/wire"

	"github.com/rfd-notify/rfd/app"
	"github.com/rfd-notify/rfd/config"
)

func initServe(ctx context.Context, cfg config.Config) (*app.Serve, func(), error) {
	wire.Build(app.ServeRuntimeSet, app.CronSet, app.NewServe)
	return nil, nil, nil
}

func initAPI(ctx context.Context, cfg config.Config) (*app.API, func(), error) {
	wire.Build(app.RuntimeSet, app.NewAPI)
	return nil, nil, nil
}

func initConsume(ctx context.Context, cfg config.Config, name app.ConsumerName) (*app.Consumer, func(), error) {
	wire.Build(app.RuntimeSet, app.NewConsumer)
	return nil, nil, nil
}

func initWorker(ctx context.Context, cfg config.Config) (*app.Worker, func(), error) {
	wire.Build(app.RuntimeSet, app.NewWorker)
	return nil, nil, nil
}

func initCron(ctx context.Context, cfg config.Config) (*app.Cron, func(), error) {
	wire.Build(app.RuntimeSet, app.CronSet, app.NewCron)
	return nil, nil, nil
}

func initMigrate(ctx context.Context, cfg config.Config, create app.CreateDatabase) (*app.Migrate, func(), error) {
	wire.Build(app.MigrateSet)
	return nil, nil, nil
}

func initAPIKeys(ctx context.Context, cfg config.Config) (*app.APIKeyManager, func(), error) {
	wire.Build(app.APIKeysSet)
	return nil, nil, nil
}

func initOps(ctx context.Context, cfg config.Config) (*app.Ops, func(), error) {
	wire.Build(app.OpsSet)
	return nil, nil, nil
}

func initPoison(ctx context.Context, cfg config.Config) (*app.PoisonManager, func(), error) {
	wire.Build(app.PoisonSet)
	return nil, nil, nil
}

func initPublish(ctx context.Context, cfg config.Config) (*app.EventPublisher, func(), error) {
	wire.Build(app.PublishSet)
	return nil, nil, nil
}

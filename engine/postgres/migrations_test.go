package postgres

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// The manifest records the schema version of every migration tool's table,
// read in the dump's snapshot.
func TestDumpRecordsMigrations(t *testing.T) {
	dsn := testenv.NewPostgresDB(t)
	testenv.Exec(t, dsn, `
CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
  type varchar(20), script varchar(1000), success boolean NOT NULL);
INSERT INTO flyway_schema_history VALUES
  (1, '1', 'init', 'SQL', 'V1__init.sql', true), (2, '1.9', 'x', 'SQL', 'V1_9__x.sql', true),
  (3, '1.10', 'y', 'SQL', 'V1_10__y.sql', true), (4, NULL, 'views', 'SQL', 'R__views.sql', true),
  (5, '2', 'broken', 'SQL', 'V2__broken.sql', false);
CREATE SCHEMA billing;
CREATE TABLE billing.databasechangelog (id varchar(255), author varchar(255), filename varchar(255),
  dateexecuted timestamp, orderexecuted int);
INSERT INTO billing.databasechangelog VALUES ('create-invoices', 'ann', 'a.xml', now(), 1), ('add-index', 'bob', 'a.xml', now(), 2);
CREATE SCHEMA gm;
CREATE TABLE gm.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO gm.schema_migrations VALUES (20240301120000, false);
CREATE SCHEMA rails;
CREATE TABLE rails.schema_migrations (version varchar PRIMARY KEY);
INSERT INTO rails.schema_migrations VALUES ('20231201000000'), ('20240115093000'), ('9');
CREATE SCHEMA py;
CREATE TABLE py.alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO py.alembic_version VALUES ('ae1027a6acf');
CREATE TABLE py.django_migrations (id serial PRIMARY KEY, app varchar(255), name varchar(255), applied timestamptz);
INSERT INTO py.django_migrations (app, name, applied) VALUES ('auth', '0001_initial', now()), ('shop', '0002_orders', now());
CREATE SCHEMA js;
CREATE TABLE js._prisma_migrations (id varchar(36) PRIMARY KEY, migration_name varchar(255), finished_at timestamptz, rolled_back_at timestamptz);
INSERT INTO js._prisma_migrations VALUES ('a', '20240101000000_init', now(), NULL), ('b', '20240201000000_add', now(), NULL),
  ('c', '20240301000000_bad', now(), now()), ('d', '20240401000000_running', NULL, NULL);
CREATE SCHEMA other;
CREATE TABLE other.schema_migrations (name text);  -- not a migration tool's table
`)
	info, err := New(dsn, WithBinDirs(testenv.PostgresBin(t))).Dump(context.Background(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Migration{
		{Tool: engine.ToolLiquibase, Table: "billing.databasechangelog", Version: "add-index", Applied: 2},
		{Tool: engine.ToolGolangMigrate, Table: "gm.schema_migrations", Version: "20240301120000", Applied: 1},
		{Tool: engine.ToolPrisma, Table: "js._prisma_migrations", Version: "20240201000000_add", Applied: 2},
		{Tool: engine.ToolFlyway, Table: "public.flyway_schema_history", Version: "1.10", Applied: 3},
		{Tool: engine.ToolAlembic, Table: "py.alembic_version", Version: "ae1027a6acf", Applied: 1},
		{Tool: engine.ToolDjango, Table: "py.django_migrations", Version: "shop.0002_orders", Applied: 2},
		{Tool: engine.ToolRails, Table: "rails.schema_migrations", Version: "20240115093000", Applied: 3},
	}
	if got := info.Source.Migrations; !slices.Equal(got, want) {
		t.Errorf("migrations\n got %+v\nwant %+v", got, want)
	}
	if len(info.Source.Tables) < 8 {
		t.Errorf("tables: %+v", info.Source.Tables)
	}
}

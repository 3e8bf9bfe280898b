-- A realistic order-service database for the benchmarks: UUID keys, JSONB
-- documents, free text, bytea receipts, orders partitioned by month. Its
-- custom-format dump compresses about 4:1 with zstd -3 (pgbench's: ~200:1).
--
--   psql -v orders=150000 -d DB -f bench/orders.sql     # ~250 MB database
--
-- The data is random but seeded (setseed), so two runs make the same rows
-- up to UUIDs and random bytes. Needs PostgreSQL 13+ (gen_random_uuid).
\set ON_ERROR_STOP on
SELECT setseed(0.21) \g /dev/null

CREATE TABLE customers (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email      text NOT NULL UNIQUE,
  name       text NOT NULL,
  address    jsonb NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE products (
  sku         text PRIMARY KEY,
  name        text NOT NULL,
  description text NOT NULL,
  price_cents integer NOT NULL CHECK (price_cents > 0)
);

CREATE TABLE orders (
  id          uuid NOT NULL DEFAULT gen_random_uuid(),
  customer_id uuid NOT NULL REFERENCES customers,
  status      text NOT NULL,
  total_cents bigint NOT NULL,
  items       jsonb NOT NULL,
  shipping    jsonb NOT NULL,
  note        text,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

DO $$
BEGIN
  FOR m IN 0..11 LOOP
    EXECUTE format('CREATE TABLE orders_2025_%s PARTITION OF orders FOR VALUES FROM (%L) TO (%L)',
      lpad((m + 1)::text, 2, '0'),
      make_date(2025, m + 1, 1), make_date(2025, m + 1, 1) + interval '1 month');
  END LOOP;
END $$;
CREATE INDEX ON orders (customer_id, created_at);

CREATE TABLE payments (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  order_id   uuid NOT NULL,
  provider   text NOT NULL,
  payload    jsonb NOT NULL,
  receipt    bytea NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX ON payments (order_id);

CREATE TABLE order_events (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id uuid NOT NULL,
  kind     text NOT NULL,
  at       timestamptz NOT NULL,
  detail   jsonb NOT NULL
);
CREATE INDEX ON order_events (order_id);

-- words for names, notes and descriptions: compressible text
CREATE TEMP TABLE w AS
SELECT array['alpine','amber','basket','bright','cedar','copper','delta','ember','falcon','garden',
             'harbor','indigo','jasper','kettle','lantern','maple','meadow','nickel','orchid','pepper',
             'quartz','raven','saffron','timber','umber','velvet','willow','yarrow','zephyr','please',
             'deliver','before','noon','leave','at','door','call','gift','wrap','fragile','thanks',
             'the','and','with','back','gate','side','office','floor','ring','bell','twice'] AS a;

CREATE TEMP TABLE orders_n AS SELECT greatest(:orders, 100)::int AS n;

INSERT INTO products
SELECT 'SKU-' || lpad(i::text, 6, '0'),
       initcap(w.a[1 + (random() * 28)::int] || ' ' || w.a[1 + (random() * 28)::int]),
       (SELECT string_agg(w.a[1 + (random() * 51)::int + 0 * g], ' ') FROM generate_series(1, 20 + i % 30) g),
       100 + (random() * 20000)::int
FROM generate_series(1, 2000) i, w;

INSERT INTO customers (email, name, address, created_at)
SELECT 'user' || i || '@' || (array['example.com','mail.test','shop.invalid'])[1 + i % 3],
       initcap(w.a[1 + (random() * 28)::int]) || ' ' || initcap(w.a[1 + (random() * 28)::int]),
       jsonb_build_object('street', (1 + (random() * 400)::int) || ' ' || initcap(w.a[1 + (random() * 28)::int]) || ' Street',
                          'city', initcap(w.a[1 + (random() * 28)::int]), 'zip', lpad((random() * 99999)::int::text, 5, '0'),
                          'country', (array['DE','FR','NL','US','GB'])[1 + i % 5]),
       timestamptz '2024-01-01' + random() * interval '365 days'
FROM generate_series(1, (SELECT n / 8 FROM orders_n)) i, w;

CREATE TEMP TABLE cust AS SELECT row_number() OVER () AS k, id FROM customers;
CREATE INDEX ON cust (k);
ANALYZE cust;

INSERT INTO orders (id, customer_id, status, total_cents, items, shipping, note, created_at)
SELECT gen_random_uuid(), c.id,
       (array['paid','shipped','delivered','cancelled','refunded'])[1 + (random() * 4)::int],
       (random() * 50000)::bigint,
       (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || lpad((1 + (random() * 1999)::int)::text, 6, '0'),
                                            'qty', 1 + (random() * 4)::int,
                                            'price_cents', 100 + (random() * 20000)::int,
                                            'gift', random() < 0.1))
        FROM generate_series(1, 1 + (random() * 4)::int + (o.i % 2) * 0) g),
       jsonb_build_object('carrier', (array['dhl','ups','fedex','postnl'])[1 + (random() * 3)::int],
                          'tracking', upper(substr(md5(random()::text), 1, 18)),
                          'eta_days', 1 + (random() * 6)::int),
       CASE WHEN random() < 0.6 THEN
         (SELECT string_agg(w.a[29 + (random() * 23)::int + 0 * g], ' ') FROM generate_series(1, 3 + (random() * 10)::int + (o.i % 2) * 0) g)
       END,
       timestamptz '2025-01-01' + random() * interval '364 days'
FROM generate_series(1, (SELECT n FROM orders_n)) o(i)
JOIN cust c ON c.k = 1 + (o.i % (SELECT n / 8 FROM orders_n)), w;

INSERT INTO payments (order_id, provider, payload, receipt, created_at)
SELECT o.id, (array['stripe','adyen','paypal'])[1 + (random() * 2)::int],
       jsonb_build_object('token', md5(random()::text) || md5(random()::text), 'amount_cents', o.total_cents,
                          'currency', 'EUR', 'captured', o.status <> 'cancelled', 'attempts', 1 + (random() * 2)::int),
       decode(md5(random()::text) || md5(random()::text) || repeat('00', 64 + (random() * 96)::int), 'hex'),
       o.created_at + interval '1 minute' * random()
FROM orders o;

INSERT INTO order_events (order_id, kind, at, detail)
SELECT o.id, k.kind, o.created_at + k.after * random(),
       jsonb_build_object('by', (array['system','courier','support'])[1 + (random() * 2)::int], 'source', 'api', 'version', 3)
FROM orders o,
     (VALUES ('created', interval '1 second'), ('paid', interval '1 hour'), ('shipped', interval '2 days')) k(kind, after);

DROP TABLE w, orders_n, cust;
VACUUM ANALYZE;

// A realistic 1 MB script for timing: DDL, DML with RETURNING, CTEs, dollar-quoted functions, E'' strings,
// comments, non-ASCII text, VACUUM / CREATE INDEX CONCURRENTLY and BEGIN … COMMIT blocks.

const templates: ((i: number) => string)[] = [
  (i) => `SELECT id, name, 'café ☕ ${i}' AS label, count(*) OVER () FROM public.orders_${i % 50} o\n  JOIN customers c USING (customer_id)\n WHERE o.created_at > now() - interval '${i % 30} days' AND c.region = 'EU';`,
  (i) => `INSERT INTO audit_log (event, payload) VALUES ('import', E'line\\n${i}\\t\\'quoted\\'') RETURNING id;`,
  (i) => `UPDATE accounts SET balance = balance + ${i}.50, note = 'Grüße 😀 ${i}' WHERE id = ${i};`,
  (i) => `-- refresh the nightly rollup ${i}\nWITH recent AS (\n  SELECT * FROM events WHERE ts > now() - interval '1 hour'\n)\nDELETE FROM staging s USING recent r WHERE s.id = r.id RETURNING s.id;`,
  (i) => `CREATE OR REPLACE FUNCTION f_${i}(x int) RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n  -- a ; inside the body\n  RETURN x + ${i};\nEND;\n$body$;`,
  (i) => `/* block /* nested */ comment ${i} */ CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_${i} ON big_table_${i % 7} (col_a, (lower(col_b)));`,
  (i) => `VACUUM (ANALYZE, VERBOSE) public.big_table_${i % 7};`,
  (i) => `BEGIN;\nUPDATE t SET v = ${i} WHERE k = 'k${i}';\nINSERT INTO "Quoted ""Table""" VALUES (${i}, $$dollar ' quote$$);\nCOMMIT;`,
  (i) => `ALTER TABLE items_${i % 20} ADD COLUMN IF NOT EXISTS extra_${i} jsonb DEFAULT '{"a": [1, 2, 3]}'::jsonb;`,
  (i) => `SELECT jsonb_build_object('k', ${i}) INTO TEMP tmp_${i} FROM generate_series(1, ${i % 100}) g;`,
  (i) => `EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t WHERE a = ${i} ORDER BY b LIMIT 10;`,
];

/** About `bytes` UTF-8 bytes of SQL, one statement per template in turn. */
export function bigScript(bytes = 1024 * 1024): string {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const s = templates[i % templates.length](i);
    parts.push(s);
    size += Buffer.byteLength(s) + 2;
  }
  return parts.join('\n\n') + '\n';
}

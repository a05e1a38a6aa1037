/**
 * Resolves PostgreSQL connection settings the way psql/libpq does, and turns them into a node-postgres config.
 * Ported from libpq's `fe-connect.c` (conninfo_parse, conninfo_uri_parse_options, passwordFromFile) and
 * `fe-secure-openssl.c` (initialize_SSL). Plain Node only: this file must never import 'vscode'.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ClientConfig } from 'pg';
import * as pgpass from 'pgpass/lib/helper';

/** libpq's `sslmode` values (https://www.postgresql.org/docs/current/libpq-ssl.html). */
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/** One configured connection. Every field is optional: an unset field falls back to `uri`, then PG* env vars, then libpq defaults. */
export interface ConnectionSpec {
  /** Display name chosen by the user; not sent to the server. */
  name?: string;
  /** A `postgresql://` URI or a libpq `key=value` string. Its fields lose to the explicit fields below. */
  uri?: string;
  /** Host name, IP address, or (starting with '/') a Unix-socket directory. */
  host?: string;
  port?: number; database?: string; user?: string; sslmode?: SslMode; applicationName?: string;
}

/** What `parseConnectionUri` returns. `password` is non-enumerable; `options` holds every other libpq keyword found (e.g. `hostaddr`, `connect_timeout`, `sslrootcert`, `passfile`, `options`). */
export type ParsedConnectionString = ConnectionSpec & { password?: string; options?: Record<string, string> };

/** Malformed or unsupported connection settings. Messages never contain a password. */
export class ConnectionSettingsError extends Error {
  override readonly name = 'ConnectionSettingsError';
}

/** Settings after applying libpq precedence. Holds no password: `toPgConfig().password` looks it up on demand. */
export interface ResolvedConnection {
  readonly name?: string; readonly port: number; readonly database: string; readonly user: string;
  readonly sslmode: SslMode; readonly applicationName?: string;
  /** libpq's `host`: what .pgpass and verify-full match against. A leading '/' means a Unix-socket directory. */
  readonly host: string;
  /** libpq's `hostaddr`: the numeric address actually dialled instead of resolving `host`. */
  readonly hostaddr?: string;
  /** Seconds; 0 waits forever. */
  readonly connectTimeout: number;
  /** `user@host:port/database`, safe to log. */
  readonly label: string;
  /** A config for `new pg.Client()`/`new pg.Pool()`; every field is explicit so pg never consults process.env itself. */
  toPgConfig(): ClientConfig;
}

/** Debian/Ubuntu's compiled-in DEFAULT_PGSOCKET_DIR (upstream uses /tmp). */
const DEFAULT_SOCKET_DIR = '/var/run/postgresql';
const SSL_MODES: readonly string[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
/**
 * libpq's PQconninfoOptions keywords; anything else is rejected, as libpq does ("invalid connection option"). Keywords
 * without a ConnectionSpec field land in `options`; resolveConnection honours hostaddr, connect_timeout, passfile,
 * sslrootcert and options, and ignores the rest (node-postgres has no equivalent for most of them).
 */
const KEYWORDS = new Set(('service user password passfile require_auth channel_binding connect_timeout dbname host hostaddr port ' +
  'client_encoding options application_name fallback_application_name keepalives keepalives_idle keepalives_interval ' +
  'keepalives_count tcp_user_timeout sslmode sslnegotiation sslcompression sslcert sslkey sslcertmode sslpassword sslrootcert ' +
  'sslcrl sslcrldir sslsni requirepeer ssl_min_protocol_version ssl_max_protocol_version min_protocol_version ' +
  'max_protocol_version gssencmode krbsrvname gsslib gssdelegation replication target_session_attrs load_balance_hosts').split(' '));
const FIELD: Record<string, keyof ConnectionSpec | 'password'> = {
  host: 'host', port: 'port', dbname: 'database', user: 'user', sslmode: 'sslmode', application_name: 'applicationName', password: 'password',
};
const fail = (message: string): never => { throw new ConnectionSettingsError(message); };
const isSpace = (c: string | undefined): boolean => c !== undefined && ' \t\n\v\f\r'.includes(c);
const firstSet = (...values: (string | undefined)[]): string | undefined => values.find((v) => v !== undefined && v !== '');

function parsePort(value: string): number {
  // libpq's parse_int_param allows surrounding whitespace; the port must then be 1..65535.
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  return n >= 1 && n <= 65535 ? n : fail(`invalid port number: "${value}"`);
}

function checkSslMode(value: string): SslMode {
  return SSL_MODES.includes(value) ? (value as SslMode) : fail(`invalid sslmode value: "${value}"`);
}

function checkHost(value: string, keyword: string): string {
  // libpq accepts comma-separated host lists and tries each in turn; node-postgres dials exactly one host.
  return value.includes(',') ? fail(`multiple hosts in "${keyword}" are not supported: node-postgres connects to one host`) : value;
}

/** conninfo_uri_decode: %XX are bytes (UTF-8 overall); a stray '%' or %00 is an error. Never echoes the value. */
function uriDecode(value: string, what: string): string {
  const parts = value.split(/(%[0-9A-Fa-f]{2})/);
  const bytes = parts.map((p, i) => (i % 2 ? Buffer.from([parseInt(p.slice(1), 16)]) : Buffer.from(p, 'utf8')));
  if (parts.some((p, i) => i % 2 === 0 && p.includes('%'))) fail(`invalid percent-encoded token in the URI ${what}`);
  if (parts.some((p, i) => i % 2 === 1 && p === '%00')) fail(`forbidden value %00 in the URI ${what}`);
  return Buffer.concat(bytes).toString('utf8');
}

/** Stores one keyword's value like conninfo_storeval; empty values count as unset (libpq's URI parser skips them too). */
function store(out: ParsedConnectionString, keyword: string, value: string, invalid: string): void {
  if (!KEYWORDS.has(keyword)) fail(`${invalid} "${keyword}"`);
  if (keyword === 'service') fail('"service" (pg_service.conf) is not supported; give the settings directly');
  if (value === '') return;
  const field = FIELD[keyword];
  if (field === 'password') Object.defineProperty(out, 'password', { value, enumerable: false, writable: true, configurable: true });
  else if (field === 'port') out.port = parsePort(value);
  else if (field === 'sslmode') out.sslmode = checkSslMode(value);
  else if (field === 'host') out.host = checkHost(value, keyword);
  else if (field !== undefined) out[field as 'user' | 'database' | 'applicationName'] = value;
  else (out.options ??= {})[keyword] = keyword === 'hostaddr' ? checkHost(value, keyword) : value;
}

/** conninfo_uri_parse_options: `postgres[ql]://[user[:password]@][netloc][:port][,...][/dbname][?param=value&...]`. */
function parseUri(uri: string, start: number, out: ParsedConnectionString): void {
  const scan = (from: number, stops: string): number => { let j = from; while (j < uri.length && !stops.includes(uri[j]!)) j++; return j; };
  let i = start;
  const at = scan(i, '@/'); // libpq looks for the credentials designator before the first '/' only
  if (uri[at] === '@') {
    const colon = scan(i, ':@');
    store(out, 'user', uriDecode(uri.slice(i, colon), 'user name'), '');
    if (colon < at) store(out, 'password', uriDecode(uri.slice(colon + 1, at), 'password'), '');
    i = at + 1;
  }
  const hosts: string[] = [], ports: string[] = [];
  for (;;) {
    if (uri[i] === '[') { // IPv6 literal; the brackets are not part of the host
      const close = uri.indexOf(']', i);
      if (close === -1) fail(`missing "]" after the IPv6 host address in the URI`);
      if (close === i + 1) fail('IPv6 host address may not be empty in the URI');
      hosts.push(uri.slice(i + 1, close));
      i = close + 1;
      if (i < uri.length && !':/?,'.includes(uri[i]!)) fail(`unexpected character "${uri[i]}" at position ${i + 1} in the URI (expected ":" or "/")`);
    } else {
      hosts.push(uri.slice(i, (i = scan(i, ':/?,'))));
    }
    ports.push(uri[i] === ':' ? uri.slice(i + 1, (i = scan(i + 1, '/?,'))) : '');
    if (uri[i] !== ',') break;
    i++;
  }
  store(out, 'host', uriDecode(hosts.join(','), 'host'), '');
  if (ports.some((p) => p !== '')) store(out, 'port', uriDecode(ports.join(','), 'port'), '');
  if (uri[i] === '/') { const end = scan(i + 1, '?'); store(out, 'dbname', uriDecode(uri.slice(i + 1, end), 'database'), ''); i = end; }
  if (i + 1 >= uri.length) return; // no '?', or nothing after it
  const params = uri.slice(i + 1).split('&');
  if (params.length > 1 && params[params.length - 1] === '') params.pop(); // libpq tolerates one trailing '&'
  params.forEach((param, n) => {
    const [rawKey, rawValue, extra] = param.split('=');
    if (rawValue === undefined) fail(`missing "=" in URI query parameter #${n + 1}`);
    const key = uriDecode(rawKey!, 'query parameter name');
    if (extra !== undefined) fail(`extra "=" in URI query parameter "${key}"`);
    const value = uriDecode(rawValue!, `query parameter "${key}"`);
    if (key === 'ssl' && value === 'true') store(out, 'sslmode', 'require', ''); // libpq's JDBC compatibility
    else store(out, key, value, 'invalid URI query parameter');
  });
}

/** conninfo_parse: `key = value` pairs separated by whitespace; values may be 'single quoted'; backslash escapes the next character. */
function parseKeywordValue(s: string, out: ParsedConnectionString): void {
  let i = 0;
  const skipSpace = (): void => { while (isSpace(s[i])) i++; };
  for (skipSpace(); i < s.length; skipSpace()) {
    const keyStart = i;
    while (i < s.length && s[i] !== '=' && !isSpace(s[i])) i++;
    const key = s.slice(keyStart, i);
    skipSpace();
    // Echo the word only if it is a keyword: a stray word could be a password typed in the wrong place.
    if (s[i] !== '=') fail(KEYWORDS.has(key) ? `missing "=" after "${key}" in connection info string` : `expected keyword=value at position ${keyStart + 1} in connection info string`);
    i++;
    skipSpace();
    let value = '';
    if (s[i] === "'") {
      for (i++; ; i++) {
        if (i >= s.length) fail('unterminated quoted string in connection info string');
        if (s[i] === "'") { i++; break; }
        if (s[i] === '\\') i++;
        if (i < s.length) value += s[i];
      }
    } else {
      for (; i < s.length && !isSpace(s[i]); i++) { if (s[i] === '\\') i++; if (i < s.length) value += s[i]; }
    }
    store(out, key, value, 'invalid connection option');
  }
}

/**
 * Parses a `postgresql://`/`postgres://` URI or a libpq keyword/value string, as libpq does (percent-decoding, `[::1]`,
 * a socket directory given as `%2Fvar%2Frun%2Fpostgresql`, query parameters overriding the URI's own parts).
 * Throws {@link ConnectionSettingsError} on malformed input or unknown keywords.
 */
export function parseConnectionUri(uri: string): ParsedConnectionString {
  const out: ParsedConnectionString = {};
  const prefix = /^postgres(?:ql)?:\/\//.exec(uri);
  if (prefix) parseUri(uri, prefix[0].length, out);
  else parseKeywordValue(uri, out);
  return out;
}

function osUserName(): string {
  try { return os.userInfo().username; } catch { return fail('could not determine the operating-system user name; set "user" or PGUSER'); }
}

/** Reads the password for one connection from a .pgpass file, with the pgpass package's format and permission rules (libpq ignores a file with group/world access). */
function readPgPass(file: string, info: pgpass.PgPassConnInfo): Promise<string | undefined> {
  return new Promise((resolve) => fs.stat(file, (err, stats) => {
    if (err || !pgpass.usePgPass(stats, file)) return resolve(undefined);
    pgpass.getPassword(info, fs.createReadStream(file), resolve);
  }));
}

/**
 * Applies libpq precedence: explicit spec field > `spec.uri` > PG* environment > defaults (a socket in /var/run/postgresql
 * if that directory exists, else localhost; port 5432; the OS user; database = user). Throws {@link ConnectionSettingsError}.
 * Password order, as libpq: `opts.password()` (SecretStorage), the URI, PGPASSWORD, then the .pgpass file; looked up only when
 * node-postgres is asked for one, never stored on the result.
 */
export function resolveConnection(spec: ConnectionSpec, env: NodeJS.ProcessEnv = process.env,
  opts: { password?: () => Promise<string | undefined>; homedir?: string } = {}): ResolvedConnection {
  const uri = spec.uri ? parseConnectionUri(spec.uri) : {};
  const extra = uri.options ?? {};
  const hostaddr = firstSet(extra.hostaddr, env.PGHOSTADDR && checkHost(env.PGHOSTADDR, 'PGHOSTADDR'));
  const givenHost = firstSet(spec.host && checkHost(spec.host, 'host'), uri.host, env.PGHOST && checkHost(env.PGHOST, 'PGHOST'));
  // libpq: with only hostaddr, host takes its value; with neither, the compiled-in socket directory.
  const host = givenHost ?? hostaddr ?? (fs.existsSync(DEFAULT_SOCKET_DIR) ? DEFAULT_SOCKET_DIR : 'localhost');
  const port = parsePort(firstSet(spec.port?.toString(), uri.port?.toString(), env.PGPORT) ?? '5432');
  const user = firstSet(spec.user, uri.user, env.PGUSER) ?? osUserName();
  const database = firstSet(spec.database, uri.database, env.PGDATABASE) ?? user;
  const home = opts.homedir ?? firstSet(env.HOME) ?? os.homedir();
  const rootCert = firstSet(extra.sslrootcert, env.PGSSLROOTCERT) ?? path.join(home, '.postgresql', 'root.crt');
  const givenMode = firstSet(spec.sslmode, uri.sslmode, env.PGSSLMODE);
  // libpq 16+: sslrootcert=system defaults sslmode to verify-full and refuses anything weaker.
  const sslmode = checkSslMode(givenMode ?? (rootCert === 'system' ? 'verify-full' : 'prefer'));
  if (rootCert === 'system' && sslmode !== 'verify-full') fail(`weak sslmode "${sslmode}" may not be used with sslrootcert=system (use "verify-full")`);
  const timeoutText = firstSet(extra.connect_timeout, env.PGCONNECT_TIMEOUT) ?? '0';
  const timeout = /^\s*-?\d+\s*$/.test(timeoutText) ? Number(timeoutText) : fail(`invalid integer value "${timeoutText}" for connection option "connect_timeout"`);
  // libpq: a timeout of 1s could fire before the connection even starts, so it insists on at least 2; <= 0 means none.
  const connectTimeout = timeout <= 0 ? 0 : Math.max(timeout, 2);
  const applicationName = firstSet(spec.applicationName, uri.applicationName, env.PGAPPNAME);
  const serverOptions = firstSet(extra.options, env.PGOPTIONS);
  const passFile = pgpass.getFileName({ PGPASSFILE: firstSet(extra.passfile, env.PGPASSFILE), HOME: home, APPDATA: env.APPDATA });
  const dialled = hostaddr ?? host, isSocket = dialled.startsWith('/');
  const label = `${user}@${host.includes(':') ? `[${host}]` : host}:${port}/${database}`;
  const [uriPassword, envPassword] = [uri.password, env.PGPASSWORD]; // snapshot: later edits to env must not matter

  const password = async (): Promise<string> => {
    const found = firstSet(await opts.password?.(), uriPassword, envPassword)
      // passwordFromFile: 'localhost' also matches the default socket directory.
      ?? await readPgPass(passFile, { host: host === DEFAULT_SOCKET_DIR ? 'localhost' : host, port, database, user });
    return found ?? fail(`no password supplied for ${label} (checked the stored secret, the URI, PGPASSWORD and ${passFile})`);
  };

  const ssl = (): ClientConfig['ssl'] => {
    // fe-connect.c: "Don't request SSL or GSSAPI over Unix sockets", whatever sslmode says. node-postgres cannot retry
    // without TLS after a TLS failure (nor the reverse), so allow/prefer behave as disable: never encrypted.
    if (isSocket || sslmode === 'disable' || sslmode === 'allow' || sslmode === 'prefer') return false;
    // initialize_SSL: 'system' means the default trust store; an existing root file turns require into verify-ca;
    // a missing one is an error only for the verify-* modes.
    let ca: string | undefined;
    if (rootCert !== 'system') {
      try { ca = fs.readFileSync(rootCert, 'utf8'); } catch {
        if (sslmode !== 'require') fail(`root certificate file "${rootCert}" does not exist; provide it, use sslrootcert=system, or use sslmode=require`);
      }
    }
    if (sslmode === 'require' && ca === undefined) return { rejectUnauthorized: false };
    return {
      rejectUnauthorized: true,
      ...(ca !== undefined && { ca }),
      // With hostaddr, libpq still verifies the certificate against host.
      ...(hostaddr !== undefined && givenHost !== undefined && net.isIP(givenHost) === 0 && { servername: givenHost }),
      ...(sslmode !== 'verify-full' && { checkServerIdentity: () => undefined }),
    };
  };

  return Object.freeze({
    ...(spec.name !== undefined && { name: spec.name }), host, ...(hostaddr !== undefined && { hostaddr }), port, database, user, sslmode,
    ...(applicationName !== undefined && { applicationName }), connectTimeout, label,
    toString: () => label,
    toPgConfig: (): ClientConfig => ({
      host: dialled, port, database, user, password, ssl: ssl(), connectionTimeoutMillis: connectTimeout * 1000,
      ...(applicationName !== undefined && { application_name: applicationName }),
      ...(serverOptions !== undefined && { options: serverOptions }),
    }),
  });
}

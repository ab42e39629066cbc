/**
 * Request bodies checked against the Engine API's types before any handler
 * acts on them: JSON nesting depth, then the swagger's body schema of the
 * route's operation (validators generated ahead of time by
 * scripts/gen-api-validators.js), refused with dockerd's words:
 * `json: cannot unmarshal number into Go struct field ContainerConfig.Env of type string`.
 */
import { invalidArgument } from '../common/errors';
import * as generated from './generated/body-validators';

type Validator = ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; keyword: string; params: Record<string, unknown> }> | null };

const VALIDATORS = generated as unknown as Record<string, Validator>;
const GO_TYPES = (generated as unknown as { GO_TYPES: Record<string, string> }).GO_TYPES;

/** Struct field names by lower-cased key (`f`), array items' (`i`) and map values' (`m`) shapes; 0 for a leaf. */
type FieldShape = 0 | { f?: Record<string, [string, FieldShape]>; i?: FieldShape; m?: FieldShape };
const FIELD_NAMES = (generated as unknown as { FIELD_NAMES: Record<string, FieldShape> }).FIELD_NAMES;

/** Operations that have a body validator (swagger operationIds). */
export function hasBodyValidator(operation: string): boolean {
  return typeof VALIDATORS[operation] === 'function' && operation !== 'GO_TYPES' && operation !== 'FIELD_NAMES';
}

/**
 * The body with its struct keys spelled as the API's fields, as Go's decoder matches them: an exact name,
 * else the field whose name equals the key case-insensitively (docker-py sends `CPURealtimePeriod`); when two
 * keys land on one field the later wins, as in Go. Map keys (labels, ports) and unknown keys stay as sent.
 */
export function foldFieldNames(operation: string, body: unknown): unknown {
  return fold(body, FIELD_NAMES[operation] ?? 0);
}

function fold(v: unknown, shape: FieldShape): unknown {
  if (!shape || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return shape.i ? v.map((x) => fold(x, shape.i!)) : v;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(v)) {
    if (shape.f) {
      const field = shape.f[key.toLowerCase()];
      if (field) out[field[0]] = fold(value, field[1]);
      else out[key] = value;
    } else out[key] = shape.m ? fold(value, shape.m) : value;
  }
  return out;
}

/** Deeper JSON than this is refused before it is parsed (Go's decoder stops at 10000; no API body nests past a dozen). */
export const MAX_JSON_DEPTH = 512;

/** Refuses text nesting arrays/objects deeper than `max`, in one pass that skips strings. */
export function checkJsonDepth(text: string, max = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;                 // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) throw invalidArgument(`invalid JSON body: nested deeper than ${max} levels`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/** A copy without null-valued object members: Go decodes null as the zero value, so null is never a type error there. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = withoutNulls(x);
  return out;
}

function jsonTypeOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'bool';
  return typeof v; // number, string, object
}

const GO_TYPE_OF: Record<string, string> = { string: 'string', integer: 'int64', number: 'float64', boolean: 'bool', array: 'slice', object: 'struct or map' };

function valueAt(data: unknown, pointer: string): unknown {
  let cur = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[key] : undefined;
  }
  return cur;
}

/** Throws a 400 naming the first field whose JSON type does not match the operation's body schema. */
export function validateBody(operation: string, body: unknown): void {
  const validate = VALIDATORS[operation];
  if (!hasBodyValidator(operation)) throw new Error(`no body validator for operation ${operation}`);
  if (body === null) return; // the handler says what an absent body means
  const data = withoutNulls(body);
  if (validate(data)) return;
  const e = validate.errors?.[0];
  if (!e) throw invalidArgument(`invalid ${GO_TYPES[operation]}`);
  const goType = GO_TYPES[operation] ?? operation;
  const actual = jsonTypeOf(valueAt(data, e.instancePath));
  const expected = ([] as unknown[]).concat(e.params.type ?? 'value').map((t) => GO_TYPE_OF[String(t)] ?? String(t)).join(' or ');
  // Field names as Go prints them: struct path without array indices.
  const field = e.instancePath.split('/').slice(1).filter((s) => !/^\d+$/.test(s)).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).join('.');
  if (e.keyword !== 'type') throw invalidArgument(`json: invalid value for ${field ? `field ${goType}.${field}` : goType}`);
  if (!field) throw invalidArgument(`json: cannot unmarshal ${actual} into Go value of type ${goType}`);
  throw invalidArgument(`json: cannot unmarshal ${actual} into Go struct field ${goType}.${field} of type ${expected}`);
}

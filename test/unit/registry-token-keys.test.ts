/**
 * Key IDs and signature checks of the registry's token verifier, on fixed vectors: the key ID
 * of the ECDSA key in distribution's token spec (docs/spec/auth/jwt.md) is the `kid` the spec
 * shows; JWS signatures verify only under the algorithm, key type and curve they were made for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { libtrustKeyID, jwkThumbprint, verifyJwsSignature } from '../../src/registry/server/auth';

const SPEC_KEY = createPublicKey({
  key: { kty: 'EC', crv: 'P-256', x: 'm7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q', y: 'dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc' },
  format: 'jwk',
});

test('libtrust key ID of the spec key is the kid of the spec token', () => {
  assert.equal(libtrustKeyID(SPEC_KEY), 'PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6');
});

test('RFC 7638 thumbprint: base64url SHA-256 of the required members in order', () => {
  const t = jwkThumbprint(SPEC_KEY)!;
  assert.match(t, /^[A-Za-z0-9_-]{43}$/);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  assert.match(jwkThumbprint(publicKey)!, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(jwkThumbprint(createPublicKey(privateKey)), jwkThumbprint(publicKey));
  assert.notEqual(jwkThumbprint(publicKey), t);
});

test('JWS signatures verify only under their algorithm, key type and curve', () => {
  const data = Buffer.from('header.claims');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const es256 = sign('sha256', data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
  assert.equal(verifyJwsSignature('ES256', ec.publicKey, data, es256), true);
  assert.equal(verifyJwsSignature('ES384', ec.publicKey, data, es256), false, 'ES384 wants P-384');
  assert.equal(verifyJwsSignature('ES256', ec384.publicKey, data, es256), false);
  assert.equal(verifyJwsSignature('ES256', ec.publicKey, Buffer.from('header.claimz'), es256), false);
  // DER (not the JOSE r||s form) is refused.
  assert.equal(verifyJwsSignature('ES256', ec.publicKey, data, sign('sha256', data, ec.privateKey)), false);
  const rs256 = sign('sha256', data, rsa.privateKey);
  assert.equal(verifyJwsSignature('RS256', rsa.publicKey, data, rs256), true);
  assert.equal(verifyJwsSignature('RS384', rsa.publicKey, data, rs256), false);
  assert.equal(verifyJwsSignature('PS256', rsa.publicKey, data, rs256), false);
  const ps512 = sign('sha512', data, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 });
  assert.equal(verifyJwsSignature('PS512', rsa.publicKey, data, ps512), true);
  const eddsa = sign(null, data, ed.privateKey);
  assert.equal(verifyJwsSignature('EdDSA', ed.publicKey, data, eddsa), true);
  for (const alg of ['HS256', 'none', '', undefined, 'toString', '__proto__']) {
    assert.equal(verifyJwsSignature(alg, rsa.publicKey, data, rs256), false, String(alg));
  }
});

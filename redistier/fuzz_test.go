package redistier

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// splitKey parses a Redis key built by keyspace.key, by the format's own
// rule (split at the last two colons), so that the fuzz test checks the
// format's injectivity and not only the builder's.
func splitKey(t *testing.T, k string) (prefix string, schema int, kind byte, body string) {
	t.Helper()
	i := strings.LastIndexByte(k, ':')
	require.Positive(t, i, "key %q", k)
	j := strings.LastIndexByte(k[:i], ':')
	require.Positive(t, j, "key %q", k)
	schema, err := strconv.Atoi(k[j+1 : i])
	require.NoError(t, err, "key %q", k)
	require.Greater(t, len(k), i+2, "key %q", k)
	return k[:j], schema, k[i+1], k[i+2:]
}

// unescapeBody returns the encoded key a plain body holds, or ok false for a
// hashed one.
func unescapeBody(t *testing.T, b string) (enc string, ok bool) {
	t.Helper()
	switch b[0] {
	case '#':
		require.Len(t, b, 65)
		_, err := hex.DecodeString(b[1:])
		require.NoError(t, err)
		return "", false
	case '=':
		r := strings.NewReplacer("%3A", ":", "%25", "%")
		require.NotContains(t, b, ":")
		return r.Replace(b[1:]), true
	}
	t.Fatalf("body %q starts with neither '=' nor '#'", b)
	return "", false
}

// FuzzKeyEncoding checks that two different (prefix, schema version, kind,
// key) never map to the same Redis key, that every key parses back into its
// parts, and that key lengths are bounded.
func FuzzKeyEncoding(f *testing.F) {
	long := strings.Repeat("x", maxBodyBytes)
	f.Add("p", uint16(0), "a:b", false, "p", uint16(0), "a", false, uint8(0))
	f.Add("p", uint16(1), "2:x", false, "p:1", uint16(2), "x", false, uint8(0))
	f.Add("p", uint16(0), "k:", true, "p", uint16(0), "k%3A", true, uint8(0))
	f.Add("p", uint16(0), "k", false, "p", uint16(0), "k", true, uint8(0))
	f.Add("a:", uint16(0), "=b", false, "a", uint16(0), ":0:v=b", false, uint8(1))
	f.Add("p", uint16(7), long, false, "p", uint16(7), long+"y", false, uint8(0))
	f.Add("p", uint16(7), "%%::", false, "p", uint16(7), "%25%3A", false, uint8(60))
	f.Fuzz(func(t *testing.T, p1 string, s1 uint16, k1 string, lease1 bool, p2 string, s2 uint16, k2 string, lease2 bool, rep uint8) {
		if p1 == "" || p2 == "" || len(p1) > MaxPrefixBytes || len(p2) > MaxPrefixBytes {
			return
		}
		// Repeat the keys to reach the hashed form too.
		k1, k2 = strings.Repeat(k1, int(rep%64)+1), strings.Repeat(k2, int(rep%64)+1)
		kind := func(lease bool) byte {
			if lease {
				return kindLease
			}
			return kindRecord
		}
		a := newKeyspace(p1, int(s1)).key(kind(lease1), k1)
		b := newKeyspace(p2, int(s2)).key(kind(lease2), k2)
		same := p1 == p2 && s1 == s2 && k1 == k2 && lease1 == lease2
		if same != (a == b) {
			t.Fatalf("(%q, %d, %q, lease %v) → %q\n(%q, %d, %q, lease %v) → %q", p1, s1, k1, lease1, a, p2, s2, k2, lease2, b)
		}
		for _, c := range []struct {
			key, prefix, enc string
			schema           uint16
			kind             byte
		}{{a, p1, k1, s1, kind(lease1)}, {b, p2, k2, s2, kind(lease2)}} {
			prefix, schema, kind, bd := splitKey(t, c.key)
			require.Equal(t, c.prefix, prefix)
			require.Equal(t, int(c.schema), schema)
			require.Equal(t, c.kind, kind)
			require.Equal(t, body(c.enc), bd)
			if enc, plain := unescapeBody(t, bd); plain {
				require.Equal(t, c.enc, enc)
			} else {
				require.Greater(t, len(c.enc)+strings.Count(c.enc, ":")*2+strings.Count(c.enc, "%")*2, maxBodyBytes-1,
					"only long keys are hashed")
			}
			limit := len(c.prefix) + len(strconv.Itoa(int(c.schema))) + 3 + maxBodyBytes
			require.LessOrEqual(t, len(c.key), limit)
		}
	})
}

// FuzzEnvelopeDecode feeds arbitrary bytes to the envelope decoder and to a
// Tier's whole decode path (envelope, size limit, expiry, JSON into a
// struct): they never panic, and what decodes re-encodes to the same bytes.
// It also checks that decode(encode(x)) == x.
func FuzzEnvelopeDecode(f *testing.F) {
	tier, err := New[string, user](deadClient(f), Options[string]{Prefix: "p", MaxValueBytes: 4096})
	require.NoError(f, err)
	f.Cleanup(func() { _ = tier.Close() })

	now := tier.nowMs()
	f.Add([]byte(nil), int64(1), int64(1), false, []byte(nil))
	f.Add(appendEnvelope(nil, envelope{expiryMs: now + 60_000, ttlMs: 60_000, payload: []byte(`{"id":1,"name":"a"}`)}),
		now+1000, int64(1000), false, []byte(`{"id":2}`))
	f.Add(appendEnvelope(nil, envelope{expiryMs: now + 60_000, ttlMs: 60_000, negative: true}), int64(5), maxTTLMs, true, []byte("x"))
	f.Add(appendEnvelope(nil, envelope{expiryMs: now + 60_000, ttlMs: 60_000, payload: []byte(`{"id":`)}), int64(-1), int64(0), false, []byte{})
	f.Add([]byte("fc\x01\x00"), int64(1<<62), int64(1<<40), false, bytes.Repeat([]byte{0}, 5000))
	f.Fuzz(func(t *testing.T, data []byte, expiry, ttl int64, negative bool, payload []byte) {
		if e, err := decodeEnvelope(data); err == nil {
			require.Equal(t, data, appendEnvelope(nil, e), "decoding is canonical")
			require.Positive(t, e.expiryMs)
			require.Positive(t, e.ttlMs)
			require.LessOrEqual(t, e.ttlMs, maxTTLMs)
		}
		if rec, ok := tier.decode(data); ok {
			require.Positive(t, rec.TTL)
		}

		if expiry <= 0 || ttl <= 0 || ttl > maxTTLMs {
			return
		}
		if negative {
			payload = nil
		}
		in := envelope{expiryMs: expiry, ttlMs: ttl, negative: negative, payload: payload}
		b := appendEnvelope(nil, in)
		out, err := decodeEnvelope(b)
		require.NoError(t, err)
		require.Equal(t, in.expiryMs, out.expiryMs)
		require.Equal(t, in.ttlMs, out.ttlMs)
		require.Equal(t, in.negative, out.negative)
		require.True(t, bytes.Equal(in.payload, out.payload))
	})
}

// FuzzInvalidationMessage feeds arbitrary messages to the invalidation
// parser: it never panics, and a message the Tier builds parses back.
func FuzzInvalidationMessage(f *testing.F) {
	tier, err := New[string, user](deadClient(f), Options[string]{Prefix: "p"})
	require.NoError(f, err)
	f.Cleanup(func() { _ = tier.Close() })
	good, err := tier.invalidation("k", "k")
	require.NoError(f, err)
	f.Add([]byte(good), "key")
	f.Add([]byte{1}, "")
	f.Fuzz(func(t *testing.T, msg []byte, key string) {
		_, _, _, _ = parseInvalidation(msg)
		resets := 0
		tier.invalidated(string(msg), func(string) {}, func() { resets++ })

		m, err := tier.invalidation(key, key)
		if err != nil { // JSON replaces invalid UTF-8: no round trip
			require.ErrorIs(t, err, ErrCodec)
			return
		}
		instance, bd, kb, err := parseInvalidation([]byte(m))
		require.NoError(t, err)
		require.Equal(t, tier.instance[:], instance)
		require.Equal(t, body(key), string(bd))
		var back string
		require.NoError(t, tier.unmarshal(kb, &back))
		require.Equal(t, key, back)
	})
}

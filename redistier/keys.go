package redistier

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strconv"
	"strings"
)

// Redis keys and channels.
//
// Every Redis key a Tier writes has the form
//
//	<prefix> ":" <schema version> ":" <kind> <body>
//
// where the schema version is a decimal integer, kind is 'v' for a record
// and 'l' for a lease, and body is either "=" followed by the encoded key
// with '%' and ':' percent-escaped, or, when that would be longer than
// maxBodyBytes, "#" followed by the hex SHA-256 of the encoded key.
//
// Neither the schema version nor <kind><body> contains ':', so splitting a
// key at its last two colons gives back prefix, version, kind and body:
// the mapping is injective over (prefix, version, kind, encoded key)
// whatever the prefix contains. Escaping is injective, a plain body starts
// with '=' and a hashed one with '#', so a plain key never equals a hashed
// one; two hashed keys are equal only if SHA-256 collides. The length is at
// most len(prefix) + len(version) + 3 + maxBodyBytes.
//
// Channels are <prefix> ":invalidations" and <prefix> ":leases"; they live
// in Redis's channel namespace, apart from keys, and differ across prefixes
// since the suffix is fixed.

// maxBodyBytes bounds the body of a key; longer ones are hashed.
const maxBodyBytes = 200

// Kinds of Redis key.
const (
	kindRecord = 'v'
	kindLease  = 'l'
)

// Channel suffixes.
const (
	invalidationSuffix = ":invalidations"
	leaseSuffix        = ":leases"
)

// keyspace builds the Redis keys of one prefix and schema version.
type keyspace struct {
	head string // prefix ":" version ":"
}

func newKeyspace(prefix string, schema int) keyspace {
	return keyspace{head: prefix + ":" + strconv.Itoa(schema) + ":"}
}

// key returns the Redis key of the given kind for the encoded key enc.
func (ks keyspace) key(kind byte, enc string) string {
	var b strings.Builder
	b.Grow(len(ks.head) + 2 + min(len(enc)+8, maxBodyBytes))
	b.WriteString(ks.head)
	b.WriteByte(kind)
	writeBody(&b, enc)
	return b.String()
}

// body returns the body for enc (see keyspace).
func body(enc string) string {
	var b strings.Builder
	writeBody(&b, enc)
	return b.String()
}

// writeBody writes the body for enc to b.
func writeBody(b *strings.Builder, enc string) {
	n := escapedLen(enc)
	if n > maxBodyBytes-1 {
		sum := sha256.Sum256([]byte(enc))
		b.WriteByte('#')
		var hx [2 * sha256.Size]byte
		hex.Encode(hx[:], sum[:])
		b.Write(hx[:])
		return
	}
	b.WriteByte('=')
	if n == len(enc) {
		b.WriteString(enc)
		return
	}
	for i := 0; i < len(enc); i++ {
		switch c := enc[i]; c {
		case '%':
			b.WriteString("%25")
		case ':':
			b.WriteString("%3A")
		default:
			b.WriteByte(c)
		}
	}
}

// escapedLen returns the length of enc once escaped, stopping early once
// it exceeds maxBodyBytes.
func escapedLen(enc string) int {
	if len(enc) > maxBodyBytes {
		return len(enc)
	}
	n := len(enc)
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; c == '%' || c == ':' {
			n += 2
		}
	}
	return n
}

// defaultKeyEncoder returns the encoder for K when K is a string or an
// integer type (named ones included), or nil.
func defaultKeyEncoder[K comparable]() func(K) string {
	var zero K
	switch any(zero).(type) { // fast paths, without reflection
	case string:
		return func(k K) string { return any(k).(string) }
	case int:
		return func(k K) string { return strconv.Itoa(any(k).(int)) }
	case int64:
		return func(k K) string { return strconv.FormatInt(any(k).(int64), 10) }
	case int32:
		return func(k K) string { return strconv.FormatInt(int64(any(k).(int32)), 10) }
	case uint64:
		return func(k K) string { return strconv.FormatUint(any(k).(uint64), 10) }
	case uint32:
		return func(k K) string { return strconv.FormatUint(uint64(any(k).(uint32)), 10) }
	}
	switch reflect.TypeFor[K]().Kind() {
	case reflect.String:
		return func(k K) string { return reflect.ValueOf(k).String() }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(k K) string { return strconv.FormatInt(reflect.ValueOf(k).Int(), 10) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(k K) string { return strconv.FormatUint(reflect.ValueOf(k).Uint(), 10) }
	}
	return nil
}

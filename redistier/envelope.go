package redistier

import (
	"encoding/binary"
	"errors"
)

// The envelope around a record's codec bytes, all integers big-endian:
//
//	offset size field
//	0      2    magic "fc"
//	2      1    format version (envelopeVersion)
//	3      1    flags: bit 0 negative (not-found) record; others zero
//	4      8    expiry: absolute, Unix milliseconds, > 0
//	12     8    TTL the record was written with, milliseconds, in
//	            (0, maxTTLMs]
//	20     -    payload: the codec's bytes; empty for a negative record
//
// The expiry lets a reader compute the remaining lifetime; the TTL caps it,
// so that a reader whose clock is behind the writer's never keeps a copy
// longer than the record's full lifetime.

const (
	envelopeMagic0  = 'f'
	envelopeMagic1  = 'c'
	envelopeVersion = 1
	envelopeHeader  = 20
	flagNegative    = 1 << 0
)

// envelope is a decoded record.
type envelope struct {
	expiryMs int64 // Unix ms
	ttlMs    int64
	negative bool
	payload  []byte // aliases the decoded bytes
}

// errBadEnvelope is returned by decodeEnvelope for bytes that are not an
// envelope of the current version.
var errBadEnvelope = errors.New("redistier: not a record of this format version")

// appendEnvelope appends the encoding of e to dst.
func appendEnvelope(dst []byte, e envelope) []byte {
	var flags byte
	if e.negative {
		flags |= flagNegative
	}
	dst = append(dst, envelopeMagic0, envelopeMagic1, envelopeVersion, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.expiryMs))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ttlMs))
	if !e.negative {
		dst = append(dst, e.payload...)
	}
	return dst
}

// decodeEnvelope parses b. It accepts exactly what appendEnvelope writes
// for a valid envelope (positive expiry and TTL, empty payload when
// negative), so that decode followed by encode gives back b.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) < envelopeHeader || b[0] != envelopeMagic0 || b[1] != envelopeMagic1 || b[2] != envelopeVersion {
		return envelope{}, errBadEnvelope
	}
	flags := b[3]
	if flags&^flagNegative != 0 {
		return envelope{}, errBadEnvelope
	}
	e := envelope{
		expiryMs: int64(binary.BigEndian.Uint64(b[4:12])),
		ttlMs:    int64(binary.BigEndian.Uint64(b[12:20])),
		negative: flags&flagNegative != 0,
		payload:  b[envelopeHeader:],
	}
	if e.expiryMs <= 0 || e.ttlMs <= 0 || e.ttlMs > maxTTLMs || e.negative && len(e.payload) > 0 {
		return envelope{}, errBadEnvelope
	}
	return e, nil
}

package bench

import (
	"math/rand/v2"
	"strconv"
)

// Keys returns n distinct keys prefix+"0", prefix+"1", ...
func Keys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// KeyIndex returns i for a key made by Keys with a prefix of length
// prefixLen, without allocating; -1 if the rest is not a number.
func KeyIndex(key string, prefixLen int) int {
	if len(key) <= prefixLen {
		return -1
	}
	n := 0
	for _, c := range []byte(key[prefixLen:]) {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// UniformTrace returns length key indices drawn uniformly from [0, n).
func UniformTrace(n, length int, seed uint64) []uint32 {
	r := rand.New(rand.NewPCG(seed, 0x5EED))
	t := make([]uint32, length)
	for i := range t {
		t[i] = uint32(r.IntN(n))
	}
	return t
}

// ZipfTrace returns length key indices from a Zipf distribution with
// exponent s (> 1) over [0, n). Ranks are mapped to indices through a
// fixed random permutation, so that popularity does not follow key order.
func ZipfTrace(n, length int, s float64, seed uint64) []uint32 {
	r := rand.New(rand.NewPCG(seed, 0x21FF))
	z := rand.NewZipf(r, s, 1, uint64(n-1))
	perm := r.Perm(n)
	t := make([]uint32, length)
	for i := range t {
		t[i] = uint32(perm[z.Uint64()])
	}
	return t
}

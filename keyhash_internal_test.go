package flightcache

import (
	"hash/maphash"
	"testing"

	"github.com/stretchr/testify/require"
)

type namedString string

type structKey struct {
	a string
	b int
}

// TestKeyHasher: keys of a string type take maphash.String's path (the
// same hash as maphash.String of the same bytes), other keys
// maphash.Comparable's; equal keys hash alike, and different ones apart.
func TestKeyHasher(t *testing.T) {
	s := newKeyHasher[string]()
	require.True(t, s.str)
	require.Equal(t, maphash.String(s.seed, "user:42"), s.hash("user:42"))
	require.Equal(t, s.hash("user:"+string([]byte("42"))), s.hash("user:42"), "equal keys, different backing arrays")
	require.NotEqual(t, s.hash("user:42"), s.hash("user:43"))
	require.Equal(t, maphash.String(s.seed, ""), s.hash(""))

	n := newKeyHasher[namedString]()
	require.True(t, n.str, "a named string type takes the string path")
	require.Equal(t, maphash.String(n.seed, "k"), n.hash(namedString("k")))

	i := newKeyHasher[int]()
	require.False(t, i.str)
	require.Equal(t, maphash.Comparable(i.seed, 7), i.hash(7))

	k := newKeyHasher[structKey]()
	require.False(t, k.str)
	require.Equal(t, k.hash(structKey{"a", 1}), k.hash(structKey{"a", 1}))
	require.NotEqual(t, k.hash(structKey{"a", 1}), k.hash(structKey{"a", 2}))
	require.Equal(t, maphash.Comparable(k.seed, structKey{"a", 1}), k.hash(structKey{"a", 1}))

	require.NotEqual(t, s.seed, newKeyHasher[string]().seed, "each hasher has a seed of its own")
}

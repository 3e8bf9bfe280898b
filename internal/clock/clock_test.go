package clock

import (
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	a, b := f.After(time.Second), f.After(time.Minute)
	if !f.Waiting(2, nil) {
		t.Fatal("two waiters expected")
	}
	if next, _ := f.Next(); !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next %v", next)
	}
	f.Advance(30 * time.Second)
	select {
	case got := <-a:
		if !got.Equal(t0.Add(30 * time.Second)) {
			t.Errorf("fired with %v", got)
		}
	default:
		t.Fatal("a 1 s waiter did not fire after 30 s")
	}
	select {
	case <-b:
		t.Fatal("a 1 min waiter fired after 30 s")
	default:
	}
	f.Set(t0) // never back
	if !f.Now().Equal(t0.Add(30 * time.Second)) {
		t.Errorf("Set moved the clock back to %v", f.Now())
	}
	f.Advance(time.Minute)
	<-b
	if _, ok := f.Next(); ok {
		t.Error("a waiter is left")
	}
	select {
	case <-f.After(0):
	default:
		t.Error("After(0) did not fire at once")
	}
}

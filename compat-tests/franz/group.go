package main

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// group is a member of a consumer group reading topic (from its start when the
// group has no offsets). After every change of what it holds it prints
// {"event":"assigned"|"revoked"|"lost", "changed", "partitions" (all it holds
// now), "memberId", "generation"}; it prints each record it reads, and commits
// what each poll returned before the group may rebalance, printing
// {"event":"committed","offsets":{partition: next offset}} (or "commitError").
// On "stop" it leaves the group (kgo's Close) and prints {"event":"closed"}.
func group(raw []byte) error {
	var s struct {
		common
		Topic            string `json:"topic"`
		Group            string `json:"group"`
		SessionTimeoutMs int    `json:"sessionTimeoutMs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	var mu sync.Mutex
	held := map[int32]bool{}
	report := func(event string, cl *kgo.Client, changed map[string][]int32) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range changed[s.Topic] {
			if event == "assigned" {
				held[p] = true
			} else {
				delete(held, p)
			}
		}
		partitions := make([]int32, 0, len(held))
		for p := range held {
			partitions = append(partitions, p)
		}
		sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
		member, generation := cl.GroupMetadata()
		emit(event, fields{"changed": changed[s.Topic], "partitions": partitions, "memberId": member, "generation": generation})
	}
	opts := []kgo.Opt{
		kgo.ConsumeTopics(s.Topic),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Commits of what a poll returned land before any of its partitions move.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, p map[string][]int32) { report("assigned", cl, p) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, p map[string][]int32) { report("revoked", cl, p) }),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, p map[string][]int32) { report("lost", cl, p) }),
	}
	if s.SessionTimeoutMs > 0 {
		opts = append(opts, kgo.SessionTimeout(time.Duration(s.SessionTimeoutMs)*time.Millisecond))
	}
	cl, err := s.newClient(opts...)
	if err != nil {
		return err
	}
	stop := untilStopped()
	for stop.Err() == nil {
		fetches := cl.PollFetches(stop)
		emitFetchErrors(fetches)
		records := fetches.Records()
		next := map[int32]int64{}
		for _, r := range records {
			emit("record", fields{"record": fromKgo(r)})
			next[r.Partition] = r.Offset + 1
		}
		if len(records) > 0 {
			if err := cl.CommitRecords(context.Background(), records...); err != nil {
				emit("commitError", fields{"error": errorName(err)})
			} else {
				emit("committed", fields{"offsets": next})
			}
		}
		cl.AllowRebalance()
	}
	cl.Close()
	emit("closed", nil)
	return nil
}

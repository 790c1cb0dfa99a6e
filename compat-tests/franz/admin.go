package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// adminOp is one kadm call: its name and the fields that call takes.
type adminOp struct {
	Op                string             `json:"op"`
	Topic             string             `json:"topic"`
	Partitions        int32              `json:"partitions"`
	ReplicationFactor int16              `json:"replicationFactor"`
	Configs           map[string]*string `json:"configs"`
	Delete            []string           `json:"delete"`
	Add               int                `json:"add"`
	Millis            int64              `json:"millis"`
	Group             string             `json:"group"`
	Groups            []string           `json:"groups"`
	Partition         int32              `json:"partition"`
	Offset            int64              `json:"offset"`
	// Replicas is a partition's new replicas; null cancels its reassignment.
	Replicas        []int32 `json:"replicas"`
	TransactionalID string  `json:"transactionalId"`
	// An ACL on Topic: its principal ("User:..."), permission ("ALLOW" or
	// "DENY") and operation ("WRITE", ...). Describing and deleting match any
	// principal when permission is left out, any operation when it is.
	Principal  string `json:"principal"`
	Permission string `json:"permission"`
	Operation  string `json:"operation"`
}

// acls is the kadm ACL builder of o's ACL fields.
func (o adminOp) acls() (*kadm.ACLBuilder, error) {
	b := kadm.NewACLs().Topics(o.Topic)
	if o.Operation == "" {
		b.Operations()
	} else {
		op, err := kmsg.ParseACLOperation(o.Operation)
		if err != nil {
			return nil, err
		}
		b.Operations(op)
	}
	switch o.Permission {
	case "":
		b.Allow().AllowHosts().Deny().DenyHosts()
	case "ALLOW":
		b.Allow(o.Principal).AllowHosts()
	case "DENY":
		b.Deny(o.Principal).DenyHosts()
	default:
		return nil, fmt.Errorf("unknown permission %q", o.Permission)
	}
	return b, nil
}

// withACLs makes an ACL call an admin call on the builder of its op's ACL fields.
func withACLs(call func(context.Context, *kadm.Client, *kadm.ACLBuilder) (any, error)) func(context.Context, *kadm.Client, adminOp) (any, error) {
	return func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		b, err := o.acls()
		if err != nil {
			return nil, err
		}
		return call(ctx, adm, b)
	}
}

// adminCalls maps each op name to its kadm call; a call returns what the tests
// look at, as JSON-friendly maps.
var adminCalls = map[string]func(context.Context, *kadm.Client, adminOp) (any, error){
	"createTopic": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		r, err := adm.CreateTopic(ctx, o.Partitions, o.ReplicationFactor, o.Configs, o.Topic)
		return fields{"partitions": r.NumPartitions, "replicationFactor": r.ReplicationFactor}, err
	},
	"deleteTopic": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		r, err := adm.DeleteTopic(ctx, o.Topic)
		if err == nil {
			err = r.Err
		}
		return nil, err
	},
	"createPartitions": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		rs, err := adm.CreatePartitions(ctx, o.Add, o.Topic)
		if err != nil {
			return nil, err
		}
		return nil, rs[o.Topic].Err
	},
	"metadata": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		m, err := adm.Metadata(ctx, o.Topic)
		if err != nil {
			return nil, err
		}
		t := m.Topics[o.Topic]
		partitions := fields{}
		for p, d := range t.Partitions {
			partitions[fmt.Sprint(p)] = fields{"leader": d.Leader, "replicas": d.Replicas, "isr": d.ISR, "error": errorName(d.Err)}
		}
		return fields{"brokers": m.Brokers.NodeIDs(), "partitions": partitions}, t.Err
	},
	"describeTopicConfigs": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		rs, err := adm.DescribeTopicConfigs(ctx, o.Topic)
		if err != nil {
			return nil, err
		}
		r, err := rs.On(o.Topic, nil)
		if err != nil {
			return nil, err
		}
		configs := fields{}
		for _, c := range r.Configs {
			configs[c.Key] = fields{"value": c.Value, "source": c.Source.String()}
		}
		return configs, r.Err
	},
	"alterTopicConfigs": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		var alter []kadm.AlterConfig
		for key, value := range o.Configs {
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: key, Value: value})
		}
		for _, key := range o.Delete {
			alter = append(alter, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: key})
		}
		rs, err := adm.AlterTopicConfigs(ctx, alter, o.Topic)
		if err != nil {
			return nil, err
		}
		r, err := rs.On(o.Topic, nil)
		if err == nil {
			err = r.Err
		}
		return nil, err
	},
	"listGroups": func(ctx context.Context, adm *kadm.Client, _ adminOp) (any, error) {
		gs, err := adm.ListGroups(ctx)
		groups := fields{}
		for name, g := range gs {
			groups[name] = fields{"state": g.State, "protocolType": g.ProtocolType, "coordinator": g.Coordinator}
		}
		return groups, err
	},
	"describeGroups": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		gs, err := adm.DescribeGroups(ctx, o.Groups...)
		if err != nil {
			return nil, err
		}
		groups := fields{}
		for name, g := range gs {
			members := []fields{}
			for _, m := range g.Members {
				assigned := map[string][]int32{}
				if c, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range c.Topics {
						assigned[t.Topic] = t.Partitions
					}
				}
				members = append(members, fields{"memberId": m.MemberID, "clientId": m.ClientID, "assigned": assigned})
			}
			groups[name] = fields{
				"state": g.State, "protocolType": g.ProtocolType, "protocol": g.Protocol,
				"coordinator": g.Coordinator.NodeID, "members": members, "error": errorName(g.Err),
			}
		}
		return groups, nil
	},
	"fetchOffsets": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		rs, err := adm.FetchOffsets(ctx, o.Group)
		if err != nil {
			return nil, err
		}
		offsets := map[string]map[int32]int64{}
		rs.Each(func(r kadm.OffsetResponse) {
			if offsets[r.Topic] == nil {
				offsets[r.Topic] = map[int32]int64{}
			}
			offsets[r.Topic][r.Partition] = r.At
		})
		return offsets, rs.Error()
	},
	"deleteGroups": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		rs, err := adm.DeleteGroups(ctx, o.Groups...)
		if err != nil {
			return nil, err
		}
		return nil, rs.Error()
	},
	"listStartOffsets": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		return listedOffsets(adm.ListStartOffsets(ctx, o.Topic))
	},
	"listEndOffsets": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		return listedOffsets(adm.ListEndOffsets(ctx, o.Topic))
	},
	"listCommittedOffsets": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		return listedOffsets(adm.ListCommittedOffsets(ctx, o.Topic))
	},
	"listOffsetsAfterMilli": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		return listedOffsets(adm.ListOffsetsAfterMilli(ctx, o.Millis, o.Topic))
	},
	"listPartitionReassignments": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		var partitions kadm.TopicsSet
		for p := range o.Partitions {
			partitions.Add(o.Topic, p)
		}
		rs, err := adm.ListPartitionReassignments(ctx, partitions)
		listed := map[int32]fields{}
		for p, r := range rs[o.Topic] {
			listed[p] = fields{"replicas": r.Replicas, "adding": r.AddingReplicas, "removing": r.RemovingReplicas}
		}
		return listed, err
	},
	"alterPartitionAssignments": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign(o.Topic, o.Partition, o.Replicas)
		rs, err := adm.AlterPartitionAssignments(ctx, req)
		if err != nil {
			return nil, err
		}
		return nil, rs.Error()
	},
	"deleteRecords": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		var before kadm.Offsets
		before.AddOffset(o.Topic, o.Partition, o.Offset, -1)
		rs, err := adm.DeleteRecords(ctx, before)
		if err != nil {
			return nil, err
		}
		r := rs[o.Topic][o.Partition]
		return fields{"lowWatermark": r.LowWatermark}, r.Err
	},
	"describeTransactions": func(ctx context.Context, adm *kadm.Client, o adminOp) (any, error) {
		ds, err := adm.DescribeTransactions(ctx, o.TransactionalID)
		if err != nil {
			return nil, err
		}
		d, err := ds.On(o.TransactionalID, nil)
		if err == nil {
			err = d.Err
		}
		topics := map[string][]int32{}
		for _, t := range d.Topics.Sorted() {
			topics[t.Topic] = t.Partitions
		}
		return fields{"state": d.State, "producerId": d.ProducerID, "producerEpoch": d.ProducerEpoch,
			"timeoutMs": d.TimeoutMillis, "topics": topics}, err
	},
	"createACLs": withACLs(func(ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) (any, error) {
		rs, err := adm.CreateACLs(ctx, b)
		for _, r := range rs {
			err = cmp.Or(err, r.Err)
		}
		return nil, err
	}),
	"describeACLs": withACLs(func(ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) (any, error) {
		rs, err := adm.DescribeACLs(ctx, b)
		described := []fields{}
		for _, r := range rs {
			err = cmp.Or(err, r.Err)
			for _, a := range r.Described {
				described = append(described, fields{"principal": a.Principal, "host": a.Host, "topic": a.Name,
					"pattern": a.Pattern.String(), "operation": a.Operation.String(), "permission": a.Permission.String()})
			}
		}
		return described, err
	}),
	"deleteACLs": withACLs(func(ctx context.Context, adm *kadm.Client, b *kadm.ACLBuilder) (any, error) {
		rs, err := adm.DeleteACLs(ctx, b)
		deleted := 0
		for _, r := range rs {
			err = cmp.Or(err, r.Err)
			for _, a := range r.Deleted {
				err = cmp.Or(err, a.Err)
			}
			deleted += len(r.Deleted)
		}
		return deleted, err
	}),
	"listTransactions": func(ctx context.Context, adm *kadm.Client, _ adminOp) (any, error) {
		ls, err := adm.ListTransactions(ctx, nil, nil)
		listed := fields{}
		for id, l := range ls {
			listed[id] = fields{"state": l.State, "producerId": l.ProducerID}
		}
		return listed, err
	},
}

// listedOffsets is {partition: offset} of a topic's listed offsets.
func listedOffsets(ls kadm.ListedOffsets, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	offsets := map[int32]int64{}
	ls.Each(func(l kadm.ListedOffset) { offsets[l.Partition] = l.Offset })
	return offsets, ls.Error()
}

// admin runs the given ops in order with one kadm client and prints
// {"event":"op", "op", "error" ("" when it worked), "result"} for each.
func admin(raw []byte) error {
	var s struct {
		common
		Ops []adminOp `json:"ops"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	for _, o := range s.Ops {
		if adminCalls[o.Op] == nil {
			return fmt.Errorf("unknown op %q", o.Op)
		}
	}
	cl, err := s.newClient()
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	defer adm.Close()
	for _, o := range s.Ops {
		result, err := adminCalls[o.Op](context.Background(), adm, o)
		emit("op", fields{"op": o.Op, "error": errorName(err), "result": result})
	}
	return nil
}

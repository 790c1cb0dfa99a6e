import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DeleteTopicsOptions;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.UnsupportedVersionException;

/**
 * A small kafka-topics / kafka-configs / kafka-consumer-groups work-alike on the official Java
 * AdminClient. It makes the same Admin calls, with the same options, as Kafka 4.1's TopicCommand
 * (create, list, describe, alter = createPartitions, delete), ConfigCommand (describeConfigs +
 * incrementalAlterConfigs) and ConsumerGroupCommand (list, describe, offsets, delete), and prints
 * one JSON line per operation.
 *
 * <pre>
 * java TopicsTool --bootstrap HOST:PORT [--max-runtime-ms N] [--api-timeout-ms N] OP ARGS... [+ OP ARGS...]
 *   create TOPIC PARTITIONS REPLICATION_FACTOR [key=value ...]
 *   list
 *   describe TOPIC...            describeTopics + describeConfigs + describeCluster + listPartitionReassignments
 *   alter-configs TOPIC OP...    OP: set:key=value | delete:key | append:key=value | subtract:key=value
 *   alter-broker-configs ID OP...  kafka-configs --entity-type brokers --entity-name ID --alter
 *                                (ID "" is --entity-default): describe the level's dynamic
 *                                configs, check that deleted keys exist, incrementalAlterConfigs
 *   describe-configs TYPE NAME   TYPE: topic | broker
 *   add-partitions TOPIC TOTAL [ASSIGNMENT]
 *                                describeTopics + createPartitions(increaseTo(TOTAL[, ASSIGNMENT])); ASSIGNMENT
 *                                as kafka-topics' --replica-assignment, for the new partitions: 1:2,2:3
 *   delete TOPIC...
 *   describe-cluster
 *   delete-records TOPIC PARTITION OFFSET   kafka-delete-records: deleteRecords(beforeOffset(OFFSET))
 *   describe-log-dirs [TOPIC]    kafka-log-dirs: describeCluster + describeLogDirs(all brokers)
 *   list-groups                  listGroups(forConsumerGroups)
 *   describe-groups GROUP...     describeConsumerGroups
 *   group-offsets GROUP          listConsumerGroupOffsets
 *   delete-groups GROUP...       deleteConsumerGroups
 * </pre>
 *
 * Output lines: {"event":"op","op":...,"args":[...],"ok":true,"result":{...}} or
 * {"event":"op",...,"ok":false,"error":{type,message,chain,root_stack,trace}}; "steps" lists
 * the Admin calls made, each with its own ok/error, so a failure names the API that failed.
 * Operations run in order whatever the outcome of earlier ones; the exit code is 0 unless
 * the arguments are wrong.
 */
public final class TopicsTool {
    private final Admin admin;
    private final long apiTimeoutMs;

    private TopicsTool(Admin admin, long apiTimeoutMs) {
        this.admin = admin;
        this.apiTimeoutMs = apiTimeoutMs;
    }

    public static void main(String[] argv) throws Exception {
        String bootstrap = null;
        long maxRuntimeMs = 50_000;
        long apiTimeoutMs = 15_000;
        int i = 0;
        while (i < argv.length && argv[i].startsWith("--")) {
            switch (argv[i]) {
                case "--bootstrap" -> bootstrap = argv[++i];
                case "--max-runtime-ms" -> maxRuntimeMs = Long.parseLong(argv[++i]);
                case "--api-timeout-ms" -> apiTimeoutMs = Long.parseLong(argv[++i]);
                default -> usage("unknown flag " + argv[i]);
            }
            i++;
        }
        if (bootstrap == null) usage("--bootstrap is required");
        List<List<String>> ops = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        for (; i < argv.length; i++) {
            if (argv[i].equals("+")) {
                if (!cur.isEmpty()) ops.add(cur);
                cur = new ArrayList<>();
            } else {
                cur.add(argv[i]);
            }
        }
        if (!cur.isEmpty()) ops.add(cur);
        if (ops.isEmpty()) usage("no operation");

        Json.watchdog(maxRuntimeMs, "TopicsTool");
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "gregor-compat-topics-tool");
        // Bounded waits; everything else is the Admin client's default, as for kafka-topics.
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(apiTimeoutMs, 10_000));
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) apiTimeoutMs);
        try (Admin admin = Admin.create(props)) {
            TopicsTool tool = new TopicsTool(admin, apiTimeoutMs);
            for (List<String> op : ops) {
                tool.run(op);
            }
            admin.close(java.time.Duration.ofSeconds(5));
        }
        Json.emit(Json.obj("event", "done"));
        System.exit(0);
    }

    private static void usage(String why) {
        System.err.println("TopicsTool: " + why);
        System.exit(2);
    }

    // -------------------------------------------------------------------------------------

    /** The Admin calls one operation made, in order, each with its outcome. */
    private final class Steps {
        final List<Object> list = new ArrayList<>();
        boolean ok = true;
        Throwable firstError;

        <T> T run(String name, Callable<T> call) throws StepFailed {
            try {
                T value = call.call();
                list.add(Json.obj("call", name, "ok", true));
                return value;
            } catch (Throwable t) {
                list.add(Json.obj("call", name, "ok", false, "error", Json.error(t)));
                ok = false;
                if (firstError == null) firstError = t;
                throw new StepFailed();
            }
        }

        /** A call whose failure is tolerated (recorded, but the operation goes on). */
        <T> T tolerate(String name, Callable<T> call, T fallback) {
            try {
                T value = call.call();
                list.add(Json.obj("call", name, "ok", true));
                return value;
            } catch (Throwable t) {
                list.add(Json.obj("call", name, "ok", false, "tolerated", true, "error", Json.error(t)));
                return fallback;
            }
        }
    }

    private static final class StepFailed extends Exception {
        StepFailed() {
            super(null, null, false, false);
        }
    }

    private <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(apiTimeoutMs + 5_000, TimeUnit.MILLISECONDS);
    }

    private void run(List<String> op) {
        String name = op.get(0);
        List<String> args = op.subList(1, op.size());
        Steps steps = new Steps();
        Map<String, Object> result = new LinkedHashMap<>();
        try {
            switch (name) {
                case "create" -> create(args, steps, result);
                case "list" -> list(steps, result);
                case "describe" -> describe(args, steps, result);
                case "alter-configs" -> alterConfigs(args, steps, result);
                case "alter-broker-configs" -> alterBrokerConfigs(args, steps, result);
                case "describe-configs" -> describeConfigs(args, steps, result);
                case "add-partitions" -> addPartitions(args, steps, result);
                case "delete" -> delete(args, steps, result);
                case "describe-cluster" -> describeCluster(steps, result);
                case "delete-records" -> deleteRecords(args, steps, result);
                case "describe-log-dirs" -> describeLogDirs(args, steps, result);
                case "list-groups" -> listGroups(steps, result);
                case "describe-groups" -> describeGroups(args, steps, result);
                case "group-offsets" -> groupOffsets(args, steps, result);
                case "delete-groups" -> deleteGroups(args, steps, result);
                default -> {
                    Json.emit(Json.obj("event", "op", "op", name, "args", args, "ok", false,
                            "error", Json.obj("type", "usage", "message", "unknown op " + name)));
                    return;
                }
            }
        } catch (StepFailed e) {
            // recorded in steps
        } catch (Throwable t) {
            steps.ok = false;
            if (steps.firstError == null) steps.firstError = t;
            steps.list.add(Json.obj("call", "(TopicsTool)", "ok", false, "error", Json.error(t)));
        }
        Map<String, Object> event = Json.obj("event", "op", "op", name, "args", args, "ok", steps.ok);
        if (steps.ok) {
            event.put("result", result);
        } else {
            event.put("error", Json.error(steps.firstError));
            event.put("partial", result);
        }
        event.put("steps", steps.list);
        Json.emit(event);
    }

    // -- kafka-topics --create ---------------------------------------------------------------

    private void create(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        String topic = args.get(0);
        int partitions = Integer.parseInt(args.get(1));
        short rf = Short.parseShort(args.get(2));
        Map<String, String> configs = new LinkedHashMap<>();
        for (String kv : args.subList(3, args.size())) {
            int eq = kv.indexOf('=');
            configs.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        NewTopic newTopic = new NewTopic(topic, java.util.Optional.of(partitions), java.util.Optional.of(rf));
        newTopic.configs(configs);
        CreateTopicsResult cr = admin.createTopics(Set.of(newTopic),
                new CreateTopicsOptions().retryOnQuotaViolation(false));
        steps.run("createTopics", () -> get(cr.all()));
        // CreateTopics v5+ returns the topic's id, partition count, replication factor and
        // configs; the Admin client exposes them here (kafka-topics itself ignores them).
        result.put("topicId", String.valueOf(steps.tolerate("createTopics.topicId", () -> get(cr.topicId(topic)), null)));
        result.put("numPartitions", steps.tolerate("createTopics.numPartitions", () -> get(cr.numPartitions(topic)), null));
        result.put("replicationFactor", steps.tolerate("createTopics.replicationFactor", () -> get(cr.replicationFactor(topic)), null));
        Config cfg = steps.tolerate("createTopics.config", () -> get(cr.config(topic)), null);
        result.put("configs", cfg == null ? null : configMap(cfg));
        result.put("line", "Created topic " + topic + ".");
    }

    // -- kafka-topics --list ----------------------------------------------------------------

    private List<String> getTopics(Steps steps, java.util.Optional<String> include) throws Exception {
        Set<String> all = steps.run("listTopics", () -> get(admin.listTopics(new ListTopicsOptions().listInternal(true)).names()));
        return all.stream().sorted()
                .filter(t -> include.isEmpty() || t.equals(include.get()))
                .collect(Collectors.toList());
    }

    private void list(Steps steps, Map<String, Object> result) throws Exception {
        Collection<TopicListing> listings = steps.run("listTopics",
                () -> get(admin.listTopics(new ListTopicsOptions().listInternal(true)).listings()));
        List<Object> topics = new ArrayList<>();
        for (TopicListing l : listings.stream().sorted(Comparator.comparing(TopicListing::name)).toList()) {
            topics.add(Json.obj("name", l.name(), "topicId", String.valueOf(l.topicId()), "internal", l.isInternal()));
        }
        result.put("topics", topics);
        result.put("names", listings.stream().map(TopicListing::name).sorted().toList());
    }

    // -- kafka-topics --describe ------------------------------------------------------------

    private void describe(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        // TopicCommand.describeTopic: getTopics (listTopics, listInternal) filtered by --topic,
        // "does not exist as expected" when nothing matches.
        List<String> topics = new ArrayList<>();
        Set<String> all = new HashSet<>(getTopics(steps, java.util.Optional.empty()));
        List<String> missing = new ArrayList<>();
        for (String t : args) {
            if (all.contains(t)) topics.add(t); else missing.add(t);
        }
        result.put("missing", missing);
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("Topic '" + missing.get(0) + "' does not exist as expected");
        }
        Map<String, TopicDescription> descs = steps.run("describeTopics", () -> get(admin.describeTopics(
                TopicCollection.ofTopicNames(topics),
                new DescribeTopicsOptions().partitionSizeLimitPerResponse(2000)).allTopicNames()));
        List<TopicDescription> tds = new ArrayList<>(descs.values());
        List<String> names = tds.stream().map(TopicDescription::name).toList();
        Map<ConfigResource, Config> configs = steps.run("describeConfigs", () -> get(admin.describeConfigs(
                names.stream().map(n -> new ConfigResource(ConfigResource.Type.TOPIC, n)).collect(Collectors.toList())).all()));
        Collection<Node> nodes = steps.run("describeCluster", () -> get(admin.describeCluster().nodes()));
        Set<Integer> liveBrokers = nodes.stream().map(Node::id).collect(Collectors.toSet());
        Set<TopicPartition> tps = new HashSet<>();
        for (TopicDescription td : tds) {
            for (TopicPartitionInfo p : td.partitions()) tps.add(new TopicPartition(td.name(), p.partition()));
        }
        // TopicCommand.listAllReassignments: UnsupportedVersion / ClusterAuthorization -> none.
        Map<TopicPartition, PartitionReassignment> reassignments;
        try {
            reassignments = get(admin.listPartitionReassignments(tps).reassignments());
            steps.list.add(Json.obj("call", "listPartitionReassignments", "ok", true));
            result.put("reassignments", "ok");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof UnsupportedVersionException || cause instanceof ClusterAuthorizationException) {
                steps.list.add(Json.obj("call", "listPartitionReassignments", "ok", false, "tolerated", true,
                        "error", Json.error(cause)));
                result.put("reassignments", "unsupported: " + cause.getClass().getSimpleName() + ": " + cause.getMessage());
                reassignments = Map.of();
            } else {
                steps.run("listPartitionReassignments", () -> { throw e; });
                return;
            }
        }
        result.put("liveBrokers", new ArrayList<>(liveBrokers));
        List<Object> out = new ArrayList<>();
        List<String> lines = new ArrayList<>();
        for (TopicDescription td : tds) {
            Config config = configs.get(new ConfigResource(ConfigResource.Type.TOPIC, td.name()));
            List<TopicPartitionInfo> sorted = new ArrayList<>(td.partitions());
            sorted.sort(Comparator.comparingInt(TopicPartitionInfo::partition));
            Map<String, Object> t = Json.obj(
                    "name", td.name(),
                    "topicId", String.valueOf(td.topicId()),
                    "internal", td.isInternal(),
                    "partitionCount", td.partitions().size());
            // The same reads as TopicCommand.TopicDescription.printDescription.
            TopicPartitionInfo first = sorted.get(0);
            PartitionReassignment firstRe = reassignments.get(new TopicPartition(td.name(), first.partition()));
            int rf = firstRe != null ? firstRe.replicas().size() - firstRe.addingReplicas().size() : first.replicas().size();
            t.put("replicationFactor", rf);
            String nonDefault = config.entries().stream().filter(ce -> !ce.isDefault())
                    .map(ce -> ce.name() + "=" + ce.value()).collect(Collectors.joining(","));
            StringBuilder line = new StringBuilder("Topic: " + td.name());
            if (!td.topicId().equals(Uuid.ZERO_UUID)) line.append("\tTopicId: ").append(td.topicId());
            line.append("\tPartitionCount: ").append(td.partitions().size())
                    .append("\tReplicationFactor: ").append(rf)
                    .append("\tConfigs: ").append(nonDefault);
            lines.add(line.toString());
            List<Object> parts = new ArrayList<>();
            for (TopicPartitionInfo p : sorted) {
                PartitionReassignment re = reassignments.get(new TopicPartition(td.name(), p.partition()));
                // PartitionDescription.printDescription + the --under-replicated /
                // --unavailable checks (leader in liveBrokers, isr size).
                StringBuilder pl = new StringBuilder("\tTopic: " + td.name());
                pl.append("\tPartition: ").append(p.partition());
                pl.append("\tLeader: ").append(p.leader() != null ? Integer.toString(p.leader().id()) : "none");
                pl.append("\tReplicas: ").append(ids(p.replicas()));
                pl.append("\tIsr: ").append(ids(p.isr()));
                if (re != null) {
                    pl.append("\tAdding Replicas: ").append(re.addingReplicas().stream().map(Object::toString).collect(Collectors.joining(",")));
                    pl.append("\tRemoving Replicas: ").append(re.removingReplicas().stream().map(Object::toString).collect(Collectors.joining(",")));
                }
                pl.append("\tElr: ").append(p.elr() != null ? ids(p.elr()) : "N/A");
                pl.append("\tLastKnownElr: ").append(p.lastKnownElr() != null ? ids(p.lastKnownElr()) : "N/A");
                lines.add(pl.toString());
                boolean unavailable = p.leader() == null || !liveBrokers.contains(p.leader().id());
                boolean underReplicated = rf - p.isr().size() > 0;
                parts.add(Json.obj(
                        "partition", p.partition(),
                        "leader", p.leader() == null ? null : p.leader().id(),
                        "replicas", p.replicas().stream().map(Node::id).toList(),
                        "isr", p.isr().stream().map(Node::id).toList(),
                        "elr", p.elr() == null ? null : p.elr().stream().map(Node::id).toList(),
                        "lastKnownElr", p.lastKnownElr() == null ? null : p.lastKnownElr().stream().map(Node::id).toList(),
                        "reassigning", re != null,
                        "unavailable", unavailable,
                        "underReplicated", underReplicated));
            }
            t.put("partitions", parts);
            t.put("configs", configMap(config));
            ConfigEntry minIsr = config.get("min.insync.replicas");
            t.put("minIsr", minIsr == null ? null : minIsr.value());
            out.add(t);
        }
        result.put("topics", out);
        result.put("lines", lines);
    }

    private static String ids(List<Node> nodes) {
        return nodes.stream().map(n -> Integer.toString(n.id())).collect(Collectors.joining(","));
    }

    private static Map<String, Object> configMap(Config config) {
        Map<String, Object> m = new TreeMap<>();
        for (ConfigEntry e : config.entries()) {
            List<Object> syn = new ArrayList<>();
            for (ConfigEntry.ConfigSynonym s : e.synonyms()) {
                syn.add(Json.obj("name", s.name(), "value", s.value(), "source", String.valueOf(s.source())));
            }
            m.put(e.name(), Json.obj(
                    "value", e.value(),
                    "source", String.valueOf(e.source()),
                    "default", e.isDefault(),
                    "readOnly", e.isReadOnly(),
                    "sensitive", e.isSensitive(),
                    "type", String.valueOf(e.type()),
                    "documentation", e.documentation(),
                    "synonyms", syn));
        }
        return m;
    }

    // -- kafka-configs --describe / --alter --------------------------------------------------

    private static ConfigResource resource(String type, String name) {
        return switch (type) {
            case "topic" -> new ConfigResource(ConfigResource.Type.TOPIC, name);
            case "broker" -> new ConfigResource(ConfigResource.Type.BROKER, name);
            default -> throw new IllegalArgumentException("unknown resource type " + type);
        };
    }

    private void describeConfigs(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        ConfigResource r = resource(args.get(0), args.get(1));
        // kafka-configs --describe asks for synonyms.
        Map<ConfigResource, Config> cfgs = steps.run("describeConfigs", () -> get(admin.describeConfigs(List.of(r),
                new DescribeConfigsOptions().includeSynonyms(true)).all()));
        result.put("configs", configMap(cfgs.get(r)));
    }

    /** OP arguments (set:key=value, delete:key, ...) as Admin operations. */
    private static List<AlterConfigOp> alterOps(List<String> specs) {
        List<AlterConfigOp> ops = new ArrayList<>();
        for (String spec : specs) {
            int colon = spec.indexOf(':');
            String kind = spec.substring(0, colon);
            String kv = spec.substring(colon + 1);
            int eq = kv.indexOf('=');
            String key = eq < 0 ? kv : kv.substring(0, eq);
            String value = eq < 0 ? "" : kv.substring(eq + 1);
            AlterConfigOp.OpType type = switch (kind) {
                case "set" -> AlterConfigOp.OpType.SET;
                case "delete" -> AlterConfigOp.OpType.DELETE;
                case "append" -> AlterConfigOp.OpType.APPEND;
                case "subtract" -> AlterConfigOp.OpType.SUBTRACT;
                default -> throw new IllegalArgumentException("unknown alter op " + kind);
            };
            ops.add(new AlterConfigOp(new ConfigEntry(key, type == AlterConfigOp.OpType.DELETE ? null : value), type));
        }
        return ops;
    }

    private void alterConfigs(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        String topic = args.get(0);
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        List<AlterConfigOp> ops = alterOps(args.subList(1, args.size()));
        // ConfigCommand.alterConfig: describe the current configs first (existence check),
        // then incrementalAlterConfigs.
        steps.run("describeConfigs", () -> get(admin.describeConfigs(List.of(r)).all()));
        steps.run("incrementalAlterConfigs", () -> get(admin.incrementalAlterConfigs(Map.of(r, ops)).all()));
        Map<ConfigResource, Config> after = steps.run("describeConfigs", () -> get(admin.describeConfigs(List.of(r)).all()));
        result.put("configs", configMap(after.get(r)));
    }

    private void alterBrokerConfigs(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        String id = args.get(0);
        ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER, id);
        List<AlterConfigOp> ops = alterOps(args.subList(1, args.size()));
        // ConfigCommand.getResourceConfig: the entries of the level being altered.
        ConfigEntry.ConfigSource level = id.isEmpty()
                ? ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
                : ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG;
        Config before = steps.run("describeConfigs", () -> get(admin.describeConfigs(List.of(r),
                new DescribeConfigsOptions().includeSynonyms(false)).all()).get(r));
        Set<String> old = new HashSet<>();
        for (ConfigEntry e : before.entries()) {
            if (e.source() == level) old.add(e.name());
        }
        List<String> missing = ops.stream().filter(o -> o.opType() == AlterConfigOp.OpType.DELETE)
                .map(o -> o.configEntry().name()).filter(k -> !old.contains(k)).toList();
        if (!missing.isEmpty()) {
            throw new org.apache.kafka.common.errors.InvalidConfigurationException("Invalid config(s): " + String.join(",", missing));
        }
        AlterConfigsOptions options = new AlterConfigsOptions().timeoutMs(30_000).validateOnly(false);
        steps.run("incrementalAlterConfigs", () -> get(admin.incrementalAlterConfigs(Map.of(r, ops), options).all()));
        Config after = steps.run("describeConfigs", () -> get(admin.describeConfigs(List.of(r),
                new DescribeConfigsOptions().includeSynonyms(true)).all()).get(r));
        result.put("configs", configMap(after));
    }

    // -- kafka-topics --alter --partitions ---------------------------------------------------

    private void addPartitions(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        String topic = args.get(0);
        int total = Integer.parseInt(args.get(1));
        NewPartitions increase = args.size() < 3 ? NewPartitions.increaseTo(total) : NewPartitions.increaseTo(total,
                java.util.Arrays.stream(args.get(2).split(","))
                        .map(replicas -> java.util.Arrays.stream(replicas.split(":")).map(Integer::valueOf).toList())
                        .toList());
        List<String> topics = getTopics(steps, java.util.Optional.of(topic));
        if (topics.isEmpty()) throw new IllegalArgumentException("Topic '" + topic + "' does not exist as expected");
        steps.run("describeTopics", () -> get(admin.describeTopics(topics).topicNameValues().get(topic)));
        steps.run("createPartitions", () -> get(admin.createPartitions(Map.of(topic, increase),
                new CreatePartitionsOptions().retryOnQuotaViolation(false)).all()));
        TopicDescription td = steps.run("describeTopics", () -> get(admin.describeTopics(topics).topicNameValues().get(topic)));
        result.put("partitionCount", td.partitions().size());
    }

    // -- kafka-topics --delete ----------------------------------------------------------------

    private void delete(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        Set<String> all = new HashSet<>(getTopics(steps, java.util.Optional.empty()));
        for (String t : args) {
            if (!all.contains(t)) throw new IllegalArgumentException("Topic '" + t + "' does not exist as expected");
        }
        steps.run("deleteTopics", () -> get(admin.deleteTopics(List.copyOf(args),
                new DeleteTopicsOptions().retryOnQuotaViolation(false)).all()));
        result.put("deleted", args);
    }

    private void describeCluster(Steps steps, Map<String, Object> result) throws Exception {
        DescribeClusterResult dc = admin.describeCluster();
        Collection<Node> nodes = steps.run("describeCluster.nodes", () -> get(dc.nodes()));
        String clusterId = steps.run("describeCluster.clusterId", () -> get(dc.clusterId()));
        Node controller = steps.run("describeCluster.controller", () -> get(dc.controller()));
        List<Object> ns = new ArrayList<>();
        for (Node n : nodes) ns.add(Json.obj("id", n.id(), "host", n.host(), "port", n.port(), "rack", n.rack()));
        result.put("nodes", ns);
        result.put("clusterId", clusterId);
        result.put("controller", controller == null ? null : controller.id());
    }

    // -- kafka-delete-records / kafka-log-dirs -----------------------------------------------

    private void deleteRecords(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        TopicPartition tp = new TopicPartition(args.get(0), Integer.parseInt(args.get(1)));
        long offset = Long.parseLong(args.get(2));
        var dr = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(offset)));
        steps.run("deleteRecords", () -> get(dr.all()));
        DeletedRecords deleted = steps.run("deleteRecords.lowWatermark", () -> get(dr.lowWatermarks().get(tp)));
        result.put("lowWatermark", deleted.lowWatermark());
    }

    private void describeLogDirs(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        java.util.Optional<String> topic = args.isEmpty() ? java.util.Optional.empty() : java.util.Optional.of(args.get(0));
        Collection<Node> nodes = steps.run("describeCluster", () -> get(admin.describeCluster().nodes()));
        List<Integer> ids = nodes.stream().map(Node::id).sorted().toList();
        Map<Integer, Map<String, LogDirDescription>> all = steps.run("describeLogDirs",
                () -> get(admin.describeLogDirs(ids).allDescriptions()));
        List<Object> brokers = new ArrayList<>();
        for (Map.Entry<Integer, Map<String, LogDirDescription>> b : new TreeMap<>(all).entrySet()) {
            List<Object> dirs = new ArrayList<>();
            for (Map.Entry<String, LogDirDescription> d : b.getValue().entrySet()) {
                LogDirDescription desc = d.getValue();
                List<Object> replicas = new ArrayList<>();
                for (Map.Entry<TopicPartition, ReplicaInfo> r : desc.replicaInfos().entrySet()) {
                    if (topic.isPresent() && !r.getKey().topic().equals(topic.get())) continue;
                    replicas.add(Json.obj("topic", r.getKey().topic(), "partition", r.getKey().partition(),
                            "size", r.getValue().size(), "offsetLag", r.getValue().offsetLag(),
                            "isFuture", r.getValue().isFuture()));
                }
                replicas.sort(Comparator.comparing((Object o) -> (String) ((Map<?, ?>) o).get("topic"))
                        .thenComparing(o -> (Integer) ((Map<?, ?>) o).get("partition")));
                dirs.add(Json.obj("path", d.getKey(),
                        "error", desc.error() == null ? null : desc.error().getClass().getName() + ": " + desc.error().getMessage(),
                        "totalBytes", desc.totalBytes().isPresent() ? desc.totalBytes().getAsLong() : null,
                        "usableBytes", desc.usableBytes().isPresent() ? desc.usableBytes().getAsLong() : null,
                        "replicas", replicas));
            }
            brokers.add(Json.obj("broker", b.getKey(), "logDirs", dirs));
        }
        result.put("brokers", brokers);
    }
    // -- kafka-consumer-groups --list / --describe / --delete ---------------------------------

    private void listGroups(Steps steps, Map<String, Object> result) throws Exception {
        Collection<GroupListing> groups = steps.run("listGroups",
                () -> get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all()));
        List<Object> out = new ArrayList<>();
        for (GroupListing g : groups.stream().sorted(Comparator.comparing(GroupListing::groupId)).toList()) {
            out.add(Json.obj("groupId", g.groupId(), "protocol", g.protocol(),
                    "state", g.groupState().map(Object::toString).orElse(null),
                    "type", g.type().map(Object::toString).orElse(null)));
        }
        result.put("groups", out);
    }

    private void describeGroups(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        Map<String, ConsumerGroupDescription> descs = steps.run("describeConsumerGroups",
                () -> get(admin.describeConsumerGroups(args).all()));
        List<Object> out = new ArrayList<>();
        for (String id : args) {
            ConsumerGroupDescription d = descs.get(id);
            List<Object> members = new ArrayList<>();
            for (MemberDescription m : d.members()) {
                members.add(Json.obj("memberId", m.consumerId(), "clientId", m.clientId(), "host", m.host(),
                        "partitions", m.assignment().topicPartitions().stream()
                                .map(TopicPartition::partition).sorted().toList()));
            }
            out.add(Json.obj("groupId", d.groupId(), "state", String.valueOf(d.groupState()),
                    "type", String.valueOf(d.type()), "partitionAssignor", d.partitionAssignor(),
                    "coordinator", d.coordinator() == null ? null : d.coordinator().id(), "members", members));
        }
        result.put("groups", out);
    }

    private void groupOffsets(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = steps.run("listConsumerGroupOffsets",
                () -> get(admin.listConsumerGroupOffsets(args.get(0)).partitionsToOffsetAndMetadata()));
        Map<String, Object> out = new TreeMap<>();
        offsets.forEach((tp, om) -> out.put(tp.topic() + ":" + tp.partition(), om == null ? null : om.offset()));
        result.put("offsets", out);
    }

    private void deleteGroups(List<String> args, Steps steps, Map<String, Object> result) throws Exception {
        steps.run("deleteConsumerGroups", () -> get(admin.deleteConsumerGroups(args).all()));
        result.put("deleted", args);
    }
}

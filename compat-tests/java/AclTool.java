import java.io.FileReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DeleteAclsResult;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

/**
 * The official Java AdminClient managing ACLs on topics: createAcls, describeAcls, deleteAcls.
 *
 * <pre>
 * java AclTool --bootstrap HOST:PORT [--max-runtime-ms N] [--client-properties FILE] OP ARGS... [+ OP ARGS...]
 *   allow TOPIC PRINCIPAL OPERATION...   createAcls: ALLOW PRINCIPAL each OPERATION (READ, WRITE, ...) on the literal TOPIC
 *   describe TOPIC                       describeAcls of the literal TOPIC, any principal and operation
 *   delete TOPIC PRINCIPAL               deleteAcls of PRINCIPAL on the literal TOPIC
 * </pre>
 *
 * Prints {"event":"op","op":...,"ok":true,"acls":[{principal, host, operation, permission}]} (the
 * ACLs created, found or deleted) or {"event":"op",...,"ok":false,"error":{...}} per operation,
 * then {"event":"done"}. Exit code 0 unless the arguments are wrong.
 */
public final class AclTool {
    public static void main(String[] argv) throws Exception {
        Properties props = new Properties();
        String bootstrap = null;
        long maxRuntimeMs = 30_000;
        int i = 0;
        while (i < argv.length && argv[i].startsWith("--")) {
            switch (argv[i]) {
                case "--bootstrap" -> bootstrap = argv[++i];
                case "--max-runtime-ms" -> maxRuntimeMs = Long.parseLong(argv[++i]);
                case "--client-properties" -> {
                    try (FileReader in = new FileReader(argv[++i], StandardCharsets.UTF_8)) {
                        props.load(in);
                    }
                }
                default -> usage("unknown flag " + argv[i]);
            }
            i++;
        }
        if (bootstrap == null || i >= argv.length) usage("--bootstrap and an operation are required");
        List<List<String>> ops = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        for (; i < argv.length; i++) {
            if (argv[i].equals("+")) {
                ops.add(cur);
                cur = new ArrayList<>();
            } else {
                cur.add(argv[i]);
            }
        }
        ops.add(cur);

        Json.watchdog(maxRuntimeMs, "AclTool");
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "gregor-compat-acl-tool");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000);
        try (Admin admin = Admin.create(props)) {
            for (List<String> op : ops) {
                Map<String, Object> event = Json.obj("event", "op", "op", op.get(0), "args", op.subList(1, op.size()));
                try {
                    event.put("acls", run(admin, op));
                    event.put("ok", true);
                } catch (Exception e) {
                    event.put("ok", false);
                    event.put("error", Json.error(e));
                }
                Json.emit(event);
            }
        }
        Json.emit(Json.obj("event", "done"));
        System.exit(0);
    }

    private static void usage(String why) {
        System.err.println("AclTool: " + why);
        System.exit(2);
    }

    private static List<Object> run(Admin admin, List<String> op) throws Exception {
        String topic = op.get(1);
        ResourcePattern resource = new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL);
        ResourcePatternFilter resourceFilter = new ResourcePatternFilter(ResourceType.TOPIC, topic, PatternType.LITERAL);
        switch (op.get(0)) {
            case "allow" -> {
                List<AclBinding> bindings = new ArrayList<>();
                for (String operation : op.subList(3, op.size())) {
                    bindings.add(new AclBinding(resource, new AccessControlEntry(op.get(2), "*",
                            AclOperation.fromString(operation), AclPermissionType.ALLOW)));
                }
                admin.createAcls(bindings).all().get(15, TimeUnit.SECONDS);
                return describe(bindings);
            }
            case "describe" -> {
                return describe(admin.describeAcls(new AclBindingFilter(resourceFilter, AccessControlEntryFilter.ANY))
                        .values().get(15, TimeUnit.SECONDS));
            }
            case "delete" -> {
                AccessControlEntryFilter entries = new AccessControlEntryFilter(op.get(2), null, AclOperation.ANY, AclPermissionType.ANY);
                DeleteAclsResult result = admin.deleteAcls(List.of(new AclBindingFilter(resourceFilter, entries)));
                return describe(result.all().get(15, TimeUnit.SECONDS));
            }
            default -> throw new IllegalArgumentException("unknown operation " + op.get(0));
        }
    }

    private static List<Object> describe(Iterable<AclBinding> bindings) {
        List<Object> out = new ArrayList<>();
        for (AclBinding b : bindings) {
            AccessControlEntry e = b.entry();
            out.add(Json.obj("topic", b.pattern().name(), "principal", e.principal(), "host", e.host(),
                    "operation", e.operation().name(), "permission", e.permissionType().name()));
        }
        return out;
    }
}

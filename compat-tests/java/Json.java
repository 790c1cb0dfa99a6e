import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * Tiny JSON writer and error formatter shared by the compat-test programs (no
 * third-party JSON library on the classpath: only kafka-clients and its runtime deps).
 * Every program prints one JSON object per line on stdout; the pytest module parses them.
 */
final class Json {
    private Json() {}

    /** An insertion-ordered map, for building JSON objects: obj("k", v, "k2", v2, ...). */
    static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    static synchronized void emit(Map<String, Object> event) {
        System.out.println(write(event));
        System.out.flush();
    }

    static String write(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String s) {
            str(sb, s);
        } else if (v instanceof Boolean || v instanceof Integer || v instanceof Long
                || v instanceof Short || v instanceof Byte) {
            sb.append(v);
        } else if (v instanceof Number n) {
            double d = n.doubleValue();
            if (Double.isFinite(d)) sb.append(v); else str(sb, v.toString());
        } else if (v instanceof Map<?, ?> m) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) sb.append(',');
                first = false;
                str(sb, String.valueOf(e.getKey()));
                sb.append(':');
                write(sb, e.getValue());
            }
            sb.append('}');
        } else if (v instanceof Collection<?> c) {
            sb.append('[');
            boolean first = true;
            for (Object o : c) {
                if (!first) sb.append(',');
                first = false;
                write(sb, o);
            }
            sb.append(']');
        } else if (v instanceof Object[] a) {
            write(sb, List.of(a));
        } else {
            str(sb, v.toString());
        }
    }

    private static void str(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    /** Unwrap ExecutionException/CompletionException to the client's own exception. */
    static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    /**
     * A JSON-able description of an exception: class, message, the cause chain and the
     * top stack frames of the innermost cause (that is where a NullPointerException
     * names the response field the client read).
     */
    static Map<String, Object> error(Throwable t) {
        Throwable e = unwrap(t);
        List<Object> chain = new ArrayList<>();
        Throwable root = e;
        for (Throwable c = e; c != null && chain.size() < 8; c = c.getCause()) {
            chain.add(c.getClass().getName() + ": " + c.getMessage());
            root = c;
        }
        List<Object> frames = new ArrayList<>();
        for (StackTraceElement el : root.getStackTrace()) {
            if (frames.size() >= 25) break;
            frames.add(el.toString());
        }
        StringWriter sw = new StringWriter();
        e.printStackTrace(new PrintWriter(sw));
        return obj(
                "type", e.getClass().getName(),
                "message", e.getMessage(),
                "chain", chain,
                "root_stack", frames,
                "trace", sw.toString());
    }

    /** Exit the JVM after maxRuntimeMs whatever the client is doing (bounded runs). */
    static void watchdog(long maxRuntimeMs, String program) {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(maxRuntimeMs);
            } catch (InterruptedException e) {
                return;
            }
            emit(obj("event", "watchdog", "program", program, "maxRuntimeMs", maxRuntimeMs));
            Runtime.getRuntime().halt(3);
        }, "gregor-watchdog");
        t.setDaemon(true);
        t.start();
    }
}

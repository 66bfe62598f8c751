// PgJDBC against `arstream serve`: what a JVM BI tool does on connect and query, each check
// printed as one JSON line (like psycopg_check.py) for tests/sql_server.rs to assert on.
//
// Usage: java -cp /usr/share/java/postgresql.jar tests/clients/JdbcCheck.java HOST PORT USER PASSWORD
//
// Every check is independent: a check that fails prints {"check": ..., "ok": false, "error": ...,
// "sqlstate": ...} and the program goes on to the next one. Exit status is 0 either way; the
// caller asserts on the lines.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;

public class JdbcCheck {
    static String host, port, user, password;

    static Connection connect(String pw) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", pw);
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "30");
        p.setProperty("loginTimeout", "10");
        p.setProperty("sslmode", System.getProperty("sslmode", "disable"));
        // Use server-side prepared statements from the first execution, as BI tools end up doing.
        p.setProperty("prepareThreshold", "1");
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/arstream", p);
    }

    // --- a tiny JSON writer (no dependencies beyond the driver jar) ---
    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof Boolean || v instanceof Integer || v instanceof Long || v instanceof Double) return v.toString();
        if (v instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object o : (List<?>) v) { if (b.length() > 1) b.append(", "); b.append(json(o)); }
            return b.append(']').toString();
        }
        return quote(v.toString());
    }

    static void emit(String check, Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("check", check);
        for (int i = 0; i + 1 < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        StringBuilder b = new StringBuilder("{");
        for (Map.Entry<String, Object> e : m.entrySet()) {
            if (b.length() > 1) b.append(", ");
            b.append(quote(e.getKey())).append(": ").append(json(e.getValue()));
        }
        System.out.println(b.append('}'));
        System.out.flush();
    }

    static void fail(String check, Throwable e) {
        String state = e instanceof SQLException ? ((SQLException) e).getSQLState() : null;
        String msg = String.valueOf(e.getMessage()).strip();
        emit(check, "ok", false, "sqlstate", state, "error", e.getClass().getSimpleName() + ": " + msg);
    }

    interface Check { void run(Connection c) throws Exception; }

    static void check(Connection c, String name, Check body) {
        try {
            body.run(c);
        } catch (Throwable e) {
            fail(name, e);
        }
    }

    public static void main(String[] args) throws Exception {
        host = args[0]; port = args[1]; user = args[2]; password = args[3];
        DriverManager.setLoginTimeout(10);

        // A wrong password is refused.
        try (Connection c = connect(password + "-wrong")) {
            emit("wrong_password", "refused", false);
        } catch (SQLException e) {
            emit("wrong_password", "refused", true, "sqlstate", e.getSQLState(),
                 "message", String.valueOf(e.getMessage()).strip());
        }

        Connection conn;
        try {
            conn = connect(password);
            DatabaseMetaData md = conn.getMetaData();
            emit("connect", "ok", true, "server", md.getDatabaseProductName() + " " + md.getDatabaseProductVersion(),
                 "driver", md.getDriverName() + " " + md.getDriverVersion(), "read_only", conn.isReadOnly());
        } catch (SQLException e) {
            fail("connect", e);
            return;
        }

        try {
            // DatabaseMetaData.getTables: what DBeaver/SQuirreL/IntelliJ list in their tree.
            check(conn, "get_tables", c -> {
                TreeSet<String> names = new TreeSet<>();
                TreeSet<String> types = new TreeSet<>();
                try (ResultSet rs = c.getMetaData().getTables(null, null, "%", new String[]{"TABLE", "VIEW"})) {
                    while (rs.next()) {
                        names.add(rs.getString("TABLE_NAME"));
                        types.add(rs.getString("TABLE_TYPE"));
                    }
                }
                emit("get_tables", "ok", names.contains("invoices") && names.contains("kpi_summary"),
                     "invoices", names.contains("invoices"), "kpi_summary", names.contains("kpi_summary"),
                     "count", names.size(), "types", new ArrayList<>(types), "names", new ArrayList<>(names));
            });

            // DatabaseMetaData.getColumns of one view.
            check(conn, "get_columns", c -> {
                List<String> cols = new ArrayList<>();
                try (ResultSet rs = c.getMetaData().getColumns(null, null, "kpi_summary", "%")) {
                    while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                }
                emit("get_columns", "ok", !cols.isEmpty(), "columns", cols);
            });

            // The totals, typed: money as BigDecimal (with its scale), the as-of date as a java.sql.Date.
            check(conn, "totals", c -> {
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery("SELECT total_ar, dso, as_of FROM kpi_summary")) {
                    rs.next();
                    BigDecimal total = rs.getBigDecimal("total_ar");
                    java.sql.Date asOf = rs.getDate("as_of");
                    emit("totals", "ok", total != null && asOf != null,
                         "total_ar", total == null ? null : total.toPlainString(),
                         "total_ar_scale", total == null ? null : total.scale(),
                         "dso", rs.getDouble("dso"),
                         "as_of", asOf == null ? null : asOf.toString(),
                         "as_of_column_type", rs.getMetaData().getColumnTypeName(3));
                }
            });

            // A PreparedStatement with a BigDecimal and a java.sql.Date parameter, run several times
            // (prepareThreshold=1: a named server-side statement from the first run).
            check(conn, "prepared", c -> {
                String sql = "SELECT invoice_id, open_amount, due_date FROM open_items "
                           + "WHERE open_amount > ? AND due_date <= ? ORDER BY open_amount DESC, invoice_id LIMIT 3";
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    int rows = 0;
                    String first = null, firstDue = null;
                    for (int run = 0; run < 3; run++) {
                        ps.setBigDecimal(1, new BigDecimal("10.00"));
                        ps.setDate(2, java.sql.Date.valueOf("2030-01-01"));
                        rows = 0;
                        try (ResultSet rs = ps.executeQuery()) {
                            while (rs.next()) {
                                if (rows == 0) {
                                    first = rs.getBigDecimal(2).toPlainString();
                                    firstDue = String.valueOf(rs.getDate(3));
                                }
                                rows++;
                            }
                        }
                    }
                    emit("prepared", "ok", rows > 0, "rows", rows, "first_amount", first, "first_due", firstDue);
                }
            });

            // Numeric parameters a BI tool binds for a money column without BigDecimal: setInt sends
            // int4, setDouble float8. Postgres casts them to numeric; see the report for the server side.
            for (String kind : new String[]{"int", "double"}) {
                check(conn, "prepared_" + kind, c -> {
                    try (PreparedStatement ps = c.prepareStatement(
                            "SELECT count(*) FROM open_items WHERE open_amount > ?")) {
                        if (kind.equals("int")) ps.setInt(1, 10); else ps.setDouble(1, 10.0);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            emit("prepared_" + kind, "ok", rs.getLong(1) > 0, "count", rs.getLong(1));
                        }
                    }
                });
            }

            // Schemas and catalogs, as a tree view lists them.
            check(conn, "get_schemas", c -> {
                List<String> schemas = new ArrayList<>();
                try (ResultSet rs = c.getMetaData().getSchemas()) {
                    while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
                }
                List<String> catalogs = new ArrayList<>();
                try (ResultSet rs = c.getMetaData().getCatalogs()) {
                    while (rs.next()) catalogs.add(rs.getString("TABLE_CAT"));
                }
                emit("get_schemas", "ok", schemas.contains("public"), "schemas", schemas, "catalogs", catalogs);
            });

            // A transaction (autocommit off, as DBeaver's manual-commit mode and Spring do) in a
            // read-only session (Connection.setReadOnly sends SET SESSION CHARACTERISTICS ...).
            check(conn, "transaction", c -> {
                c.setReadOnly(true);
                c.setAutoCommit(false);
                long n;
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery("SELECT count(*) FROM open_items")) {
                    rs.next();
                    n = rs.getLong(1);
                }
                c.commit();
                c.setAutoCommit(true);
                c.setReadOnly(false);
                emit("transaction", "ok", n > 0, "open_items", n);
            });

            // Writes are refused with Postgres' read-only code, and the connection stays usable.
            check(conn, "write", c -> {
                try (Statement s = c.createStatement()) {
                    s.executeUpdate("INSERT INTO invoices (invoice_id) VALUES ('X')");
                    emit("write", "ok", false, "refused", false);
                } catch (SQLException e) {
                    emit("write", "ok", "25006".equals(e.getSQLState()), "refused", true,
                         "sqlstate", e.getSQLState(), "message", String.valueOf(e.getMessage()).strip());
                }
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
                    rs.next();
                    emit("after_write", "ok", rs.getInt(1) == 1);
                }
            });
        } finally {
            conn.close();
        }
    }
}

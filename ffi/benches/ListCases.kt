// `cargo xtask bench ffi`, the Kotlin half: the same screen call (first page of 50 open cases)
// on the same phone database through the generated Kotlin bindings on the JVM (JNA), as the
// Android app makes it; median of 201 after 500 warm-up calls (JIT).

package cn.gridlink.ffi.bench

import cn.gridlink.ffi.*
import java.io.File

fun main(args: Array<String>) {
    val bench = File(args[0], "bench.json").readText()
    fun field(name: String) = Regex("\"$name\":\"([^\"]*)\"").find(bench)!!.groupValues[1]
    val app = FieldApp.open(AppConfig(
        databasePath = field("database_path"), photoDir = field("photo_dir"),
        serverUrl = "http://127.0.0.1:9", deviceId = field("device_id"), deviceName = "bench",
        maxAttempts = 1u,
    ))
    val query = CaseListQuery(openOnly = true, limit = 50u)
    check(app.listCases(query).items.size == 50) { "expected a full page" }
    repeat(500) { app.listCases(query) }
    val samples = (0 until 201).map {
        val t = System.nanoTime()
        app.listCases(query)
        (System.nanoTime() - t) / 1e6
    }.sorted()
    val median = Math.round(samples[samples.size / 2] * 1000.0) / 1000.0
    println("{\"bench\":\"ffi\",\"metric\":\"kotlin_list_ms\",\"value\":$median,\"unit\":\"ms\"}")
}

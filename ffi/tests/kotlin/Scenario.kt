// The multi-role scenario through the generated Kotlin bindings on the JVM (JNA over the host
// library) against a real gridlink-server child process on 127.0.0.1: what the Android app
// does, minus the screens. Run by `cargo xtask ci`; exits non-zero on the first failure.

package cn.gridlink.ffi.test

import cn.gridlink.ffi.*
import java.io.File
import java.net.ServerSocket
import java.net.URL
import java.nio.file.Files
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess

const val GRID = "320509001001-01"
val PLENTY: ULong = 50UL * 1024UL * 1024UL * 1024UL

fun check(condition: Boolean, what: String) {
    if (!condition) throw AssertionError(what)
}

inline fun <reified E : Throwable> expect(what: String, block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("$what: expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("$what: expected ${E::class.simpleName}, nothing was thrown")
}

/** The server as a child process, restartable on the same port and data directory. */
class Server(private val bin: String, private val dataDir: File) {
    val port = ServerSocket(0, 0, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
    val url = "http://127.0.0.1:$port"
    val codes = mutableMapOf<String, String>()
    private var process: Process? = null

    fun start() {
        val p = ProcessBuilder(bin, "demo", "--data", dataDir.path, "--cases", "20", "--addr", "127.0.0.1:$port")
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        process = p
        // A server that never says it is serving is killed, so the suite fails instead of hanging.
        val started = java.util.concurrent.atomic.AtomicBoolean(false)
        Thread {
            Thread.sleep(300_000)
            if (!started.get()) p.destroyForcibly()
        }.apply { isDaemon = true }.start()
        val reader = p.inputStream.bufferedReader()
        while (true) {
            val line = reader.readLine() ?: throw IllegalStateException("the server exited: ${p.waitFor()}")
            val parts = line.trim().split(Regex("\\s+"))
            if (line.startsWith("    ") && parts.size >= 4 && parts[0].contains('-')) codes[parts[0]] = parts.last()
            if (line.contains("serving on")) break
        }
        started.set(true)
        // Keep draining stdout so the child never blocks on a full pipe.
        Thread { reader.forEachLine { } }.apply { isDaemon = true }.start()
        repeat(100) {
            try {
                URL("$url/healthz").readText()
                return
            } catch (e: java.io.IOException) {
                Thread.sleep(50)
            }
        }
        throw IllegalStateException("the server does not answer /healthz")
    }

    fun stop() {
        val p = process ?: return
        p.destroy() // SIGTERM: the server finishes requests in flight
        if (!p.waitFor(30, TimeUnit.SECONDS)) p.destroyForcibly().waitFor()
        process = null
    }
}

class Watcher : SyncObserver {
    val done = CountDownLatch(1)
    var progressCalls = 0
    var summary: SyncSummary? = null
    var error: ApiException? = null
    override fun progress(progress: SyncProgressView) { progressCalls++ }
    override fun retrying(attempt: UInt, delayMs: ULong, message: String) {}
    override fun finished(summary: SyncSummary) { this.summary = summary; done.countDown() }
    override fun failed(error: ApiException) { this.error = error; done.countDown() }
}

class PhotoWatcher : PhotoQueueObserver {
    val changes = java.util.Collections.synchronizedList(mutableListOf<PhotoView>())
    override fun changed(photo: PhotoView) { changes.add(photo) }
}

fun app(work: File, server: Server, name: String): FieldApp {
    val dir = File(work, name).apply { mkdirs() }
    return FieldApp.open(AppConfig(
        databasePath = File(dir, "gridlink.sqlite").path,
        photoDir = File(dir, "camera").path,
        serverUrl = server.url,
        deviceId = newId(),
        deviceName = "kotlin $name",
        maxAttempts = 2u,
    ))
}

fun scenario(server: Server, work: File, camera: (Int) -> ByteArray) {
    // The inspector signs in and pulls the grid.
    val inspector = app(work, server, "inspector")
    val session = inspector.enroll(server.codes.getValue("insp-0001"))
    check(session.role == Role.GRID_INSPECTOR, "inspector role")
    check(inspector.sync(null).docsReceived > 0UL, "first sync pulls the grid")
    val firstAddress = inspector.patrolList(null, 30u).first()
    val spot = Location(inspector.address(firstAddress.code).details.point, 8.0)

    // Offline: a case with a photo.
    server.stop()
    val caseId = newId()
    val photo = inspector.capturePhoto(caseId, camera(1), spot, PLENTY)
    check(photo.state == PhotoState.PROCESSED, "photo processed")
    val reported = inspector.reportCase(NewCaseInput(
        id = caseId, category = Category.SANITATION, title = "河道漂浮垃圾", description = "",
        location = spot, photos = listOf(photo.hash)))
    check(reported.status == Status.REPORTED && reported.gridId == GRID, "reported in the grid")
    expect<ApiException.Network>("sync without a server") { inspector.sync(null) }
    check(inspector.unsentCount() >= 1u, "the report waits to be sent")
    server.start()

    // Back in coverage: the sync, with observers.
    val photos = PhotoWatcher()
    inspector.setPhotoObserver(photos)
    val watcher = Watcher()
    inspector.startSync(watcher)
    check(watcher.done.await(120, TimeUnit.SECONDS), "the sync ended")
    check(watcher.error == null, "sync failed: ${watcher.error}")
    check(watcher.summary!!.docsAccepted >= 1UL && watcher.summary!!.photosUploaded == 1u, "case and photo sent")
    check(watcher.progressCalls >= 1, "progress reported")
    check(photos.changes.any { it.hash == photo.hash && it.state == PhotoState.UPLOADED }, "photo observer told")

    // The grid chief accepts and resolves in the grid.
    val chief = app(work, server, "chief")
    check(chief.enroll(server.codes.getValue("chief-0001")).role == Role.GRID_CHIEF, "chief role")
    chief.sync(null)
    val page = chief.listCases(CaseListQuery(openOnly = true, gridIds = listOf(GRID)))
    check(page.items.any { it.id == caseId }, "the chief sees the case")
    chief.record(caseId, EventKind.Accepted(assignee = null, dueAtMs = null), spot)
    val resolved = chief.record(caseId, EventKind.ResolvedInGrid(note = "已组织打捞"), spot)
    check(resolved.solvedLevel == Level.GRID, "solved in the grid")
    check(chief.sync(null).docsRejected == 0UL, "the chief's steps are accepted")
    inspector.sync(null)
    check(inspector.case(caseId).status == resolved.status, "the inspector sees the chief's steps")
    expect<ApiException.NotAllowed>("an inspector dispatching") {
        inspector.record(caseId, EventKind.Dispatched(DispatchTarget.Department("dept-env", "区生态环境局"), null, ""), spot)
    }
    expect<ApiException.NotFound>("a missing case") { inspector.case(newId()) }

    // A citizen's 随手拍.
    val citizen = app(work, server, "citizen")
    check(citizen.registerCitizen(null, null).role == Role.CITIZEN, "citizen role")
    val reportId = newId()
    val citizenPhoto = citizen.capturePhoto(reportId, camera(3), spot, PLENTY)
    citizen.submitCitizenReport(reportId, Category.SANITATION, "垃圾桶满溢无人清运", spot, listOf(citizenPhoto.hash))
    check(citizen.sync(null).reportsSubmitted == 1u, "report submitted")
    check(citizen.myReports().single().gridId == GRID, "report placed in the grid")

    // Validation errors carry a message a person can act on.
    val bad = expect<ApiException.Validation>("an empty title") {
        inspector.reportCase(NewCaseInput(id = newId(), category = Category.OTHER, title = " ", location = spot))
    }
    check(bad.message?.contains("标题") == true, "the message says what is wrong: ${bad.message}")

    // A panic inside Rust is an exception.
    expect<InternalException>("a Rust panic") { checkPanicBoundary("kotlin") }
    check(newId().length == 36, "the library still works after a panic")
}

fun main() {
    val bin = System.getenv("GRIDLINK_SERVER_BIN") ?: "target/debug/gridlink-server"
    val root = File(System.getenv("GRIDLINK_ROOT") ?: ".")
    val work = Files.createTempDirectory("gridlink-kotlin-").toFile()
    val server = Server(bin, File(work, "server"))
    var failed = false
    try {
        server.start()
        // Each capture its own photo: the same bytes are the same photo (by hash).
        scenario(server, work) { n -> File(root, "fixtures/photos/orientation-$n.jpg").readBytes() }
        println("kotlin binding scenario: passed")
    } catch (e: Throwable) {
        e.printStackTrace()
        failed = true
    } finally {
        server.stop()
        work.deleteRecursively()
    }
    if (failed) exitProcess(1)
}

package cn.gridlink.app

import android.app.Application
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import cn.gridlink.ffi.*
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * The screens' state over the library. Every library call runs on Dispatchers.IO (they are
 * blocking database calls); errors become the message shown in the snackbar.
 */
class AppModel(application: Application) : AndroidViewModel(application) {
    val field: FieldApp = (application as GridLinkApplication).field

    var session by mutableStateOf(field.session())
        private set
    var patrol by mutableStateOf<List<PatrolItem>>(emptyList())
        private set
    var myCases by mutableStateOf<List<CaseListItem>>(emptyList())
        private set
    var photoQueue by mutableStateOf<List<PhotoView>>(emptyList())
        private set
    /** Photos whose report was never saved: offered for discarding, not unsent work. */
    var orphanedPhotos by mutableStateOf<List<PhotoView>>(emptyList())
        private set
    /** What the server refused (with why) or could not take yet: the "needs attention" list. */
    var refusedEdits by mutableStateOf<List<RejectedEditView>>(emptyList())
        private set
    var waitingItems by mutableStateOf<List<RejectedItem>>(emptyList())
        private set
    var syncState by mutableStateOf("")
        private set
    var message by mutableStateOf<String?>(null)
    /** The server no longer accepts this phone (revoked): offer to sign out and in again. */
    var signInAgain by mutableStateOf(false)

    /** Runs a library call off the main thread; an ApiException becomes the message. */
    fun <T> call(block: () -> T, then: (T) -> Unit = {}) {
        viewModelScope.launch {
            try {
                val result = withContext(Dispatchers.IO) { block() }
                then(result)
            } catch (e: ApiException.SignInAgain) {
                signInAgain = true
                message = e.detail()
            } catch (e: ApiException) {
                message = e.detail()
            } catch (e: InternalException) {
                message = "内部错误，已保存的工作不受影响 / internal error; saved work is safe"
            }
        }
    }

    fun enroll(code: String) = call({ field.enroll(code) }) { session = it; refresh() }

    fun registerCitizen() = call({ field.registerCitizen(null, null) }) { session = it; refresh() }

    /** Signs out, dropping what a revoked device still holds, so the user can sign in again. */
    fun signOutDiscarding() = call({ field.signOut(true) }) { session = null; signInAgain = false }

    fun refresh() {
        val s = session ?: return
        call({
            Triple(
                if (s.role == Role.CITIZEN) emptyList() else field.patrolList(null, 30u),
                field.listCases(CaseListQuery(reportedByMe = s.role != Role.GRID_CHIEF, openOnly = false)).items,
                field.photoQueue(),
            ) to (field.rejectedEdits() to field.rejectedItems())
        }) { (lists, attention) ->
            val (p, c, q) = lists
            patrol = p; myCases = c; photoQueue = q.filter { !it.orphaned }
            orphanedPhotos = q.filter { it.orphaned }
            refusedEdits = attention.first
            waitingItems = attention.second.filter { it.willRetry }
        }
    }

    /** "丢弃" on a photo whose report was never saved. */
    fun discardPhoto(hash: String) = call({ field.discardPhoto(hash) }) { refresh() }

    /** The observer is called on the library's network thread: hop to the main thread. */
    private fun onMain(block: () -> Unit) {
        viewModelScope.launch(Dispatchers.Main) { block() }
    }

    fun syncNow() {
        syncState = "同步中… / syncing"
        call({
            field.startSync(object : SyncObserver {
                override fun progress(progress: SyncProgressView) = onMain {
                    syncState = "已发送 ${progress.docsSent}，已接收 ${progress.docsReceived}"
                }
                override fun retrying(attempt: UInt, delayMs: ULong, message: String) = onMain {
                    syncState = "网络不稳定，${delayMs / 1000u} 秒后重试（第 $attempt 次）"
                }
                override fun finished(summary: SyncSummary) = onMain {
                    syncState = buildString {
                        append("同步完成：已接受 ${summary.docsAccepted} 项，上传照片 ${summary.photosUploaded} 张")
                        if (summary.docsRejected > 0u) append("；${summary.docsRejected} 项被拒绝，见“需要处理”")
                        if (summary.docsDeferred > 0u) append("；${summary.docsDeferred} 项服务器暂未接收，稍后重发")
                    }
                    refresh()
                }
                override fun failed(error: ApiException) = onMain {
                    syncState = error.detail()
                    if (error is ApiException.SignInAgain) signInAgain = true
                }
            })
        })
    }
}

/** The message of any ApiException variant. */
fun ApiException.detail(): String = when (this) {
    is ApiException.Validation -> detail
    is ApiException.NotFound -> detail
    is ApiException.NotAllowed -> detail
    is ApiException.Network -> detail
    is ApiException.StorageFull -> detail
    is ApiException.Rejected -> detail
    is ApiException.SignInAgain -> detail
    is ApiException.Storage -> detail
}

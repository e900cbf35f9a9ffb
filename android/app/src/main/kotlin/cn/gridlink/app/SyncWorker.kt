package cn.gridlink.app

import android.content.Context
import androidx.work.CoroutineWorker
import androidx.work.WorkerParameters
import cn.gridlink.ffi.ApiException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/** Background sync: the blocking `sync` on WorkManager's IO thread. */
class SyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result = withContext(Dispatchers.IO) {
        val field = (applicationContext as GridLinkApplication).field
        if (field.session() == null) return@withContext Result.success()
        try {
            field.sync(null)
            Result.success()
        } catch (e: ApiException.Network) {
            Result.retry() // offline: WorkManager backs off and tries again
        } catch (e: ApiException.SignInAgain) {
            Result.failure() // the app shows the sign-in screen at next start
        } catch (e: ApiException) {
            Result.retry()
        }
    }
}

package cn.gridlink.app

import android.app.Application
import android.os.Build
import androidx.work.Constraints
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.NetworkType
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import cn.gridlink.ffi.AppConfig
import cn.gridlink.ffi.FieldApp
import cn.gridlink.ffi.newId
import java.io.File
import java.util.concurrent.TimeUnit

/** Opens the library once per process and schedules the background sync. */
class GridLinkApplication : Application() {
    lateinit var field: FieldApp
        private set

    override fun onCreate() {
        super.onCreate()
        field = FieldApp.open(
            AppConfig(
                databasePath = File(noBackupFilesDir, "gridlink.sqlite").path,
                photoDir = File(cacheDir, "camera").path,
                serverUrl = BuildConfig.SERVER_URL,
                deviceId = deviceId(),
                deviceName = "${Build.MANUFACTURER} ${Build.MODEL}",
                maxAttempts = 8u,
            )
        )
        scheduleSync()
    }

    /** The installation's device id: made once, kept for the life of the installation. */
    private fun deviceId(): String {
        val prefs = getSharedPreferences("gridlink", MODE_PRIVATE)
        return prefs.getString("device_id", null) ?: newId().also {
            prefs.edit().putString("device_id", it).apply()
        }
    }

    /** Every 15 minutes while there is a network (WorkManager's shortest period). */
    private fun scheduleSync() {
        val request = PeriodicWorkRequestBuilder<SyncWorker>(15, TimeUnit.MINUTES)
            .setConstraints(Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build())
            .build()
        WorkManager.getInstance(this)
            .enqueueUniquePeriodicWork("gridlink-sync", ExistingPeriodicWorkPolicy.KEEP, request)
    }
}

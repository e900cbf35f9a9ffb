package cn.gridlink.app

import android.annotation.SuppressLint
import android.content.Context
import com.google.android.gms.location.LocationServices
import com.google.android.gms.location.Priority
import cn.gridlink.ffi.LatLon
import cn.gridlink.ffi.Location
import kotlinx.coroutines.suspendCancellableCoroutine
import kotlin.coroutines.resume

/**
 * One current fix (WGS-84, as the library stores), or null without permission or signal: a
 * check-in without a location is refused by the library with a message saying so.
 */
@SuppressLint("MissingPermission")
suspend fun here(context: Context): Location? = suspendCancellableCoroutine { cont ->
    LocationServices.getFusedLocationProviderClient(context)
        .getCurrentLocation(Priority.PRIORITY_HIGH_ACCURACY, null)
        .addOnSuccessListener { fix ->
            cont.resume(fix?.let { Location(LatLon(it.latitude, it.longitude), it.accuracy.toDouble()) })
        }
        .addOnFailureListener { cont.resume(null) }
}

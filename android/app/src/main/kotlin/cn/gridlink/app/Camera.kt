package cn.gridlink.app

import androidx.camera.core.ImageCapture
import androidx.camera.core.ImageCaptureException
import androidx.camera.view.LifecycleCameraController
import androidx.camera.view.PreviewView
import androidx.compose.foundation.layout.*
import androidx.compose.material3.Button
import androidx.compose.material3.Text
import androidx.compose.runtime.*
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.platform.LocalLifecycleOwner
import androidx.compose.ui.unit.dp
import androidx.compose.ui.viewinterop.AndroidView
import androidx.core.content.ContextCompat
import java.io.File

/**
 * CameraX capture straight into the library's photo queue: the camera writes a file at a
 * path the library hands out, then `capturePhotoFile` processes it (orientation, size,
 * metadata removed) and deletes the original once queued.
 */
@Composable
fun CameraCapture(model: AppModel, ownerId: String, onCaptured: (String) -> Unit) {
    val context = LocalContext.current
    val lifecycle = LocalLifecycleOwner.current
    val controller = remember {
        LifecycleCameraController(context).apply { bindToLifecycle(lifecycle) }
    }
    Box(Modifier.fillMaxSize()) {
        AndroidView(
            factory = { PreviewView(it).apply { this.controller = controller } },
            modifier = Modifier.fillMaxSize(),
        )
        Button(
            modifier = Modifier.align(Alignment.BottomCenter).padding(24.dp),
            onClick = {
                val path = model.field.newPhotoPath()
                val output = ImageCapture.OutputFileOptions.Builder(File(path)).build()
                controller.takePicture(output, ContextCompat.getMainExecutor(context),
                    object : ImageCapture.OnImageSavedCallback {
                        override fun onImageSaved(result: ImageCapture.OutputFileResults) {
                            val free = context.filesDir.usableSpace.toULong()
                            model.call({
                                val photo = model.field.capturePhotoFile(ownerId, path, null, free)
                                // A visit's photo is attached to the visit as a finding.
                                if (ownerId.startsWith("visit-")) {
                                    model.field.addFinding(ownerId.removePrefix("visit-"), "现场照片 / site photo", listOf(photo.hash), null)
                                }
                                photo
                            }) { onCaptured(it.hash) }
                        }
                        override fun onError(e: ImageCaptureException) {
                            model.message = "拍照失败 / the photo failed: ${e.message}"
                        }
                    })
            },
        ) { Text("拍照 / Capture") }
    }
}

import GridLink
import SwiftUI
import UIKit

/// The system camera; the JPEG goes straight into the library's photo queue, which orients,
/// resizes and strips it before upload.
struct CameraPicker: UIViewControllerRepresentable {
    @EnvironmentObject var model: AppModel
    @Environment(\.dismiss) var dismiss
    let ownerId: String

    func makeUIViewController(context: Context) -> UIImagePickerController {
        let picker = UIImagePickerController()
        picker.sourceType = UIImagePickerController.isSourceTypeAvailable(.camera) ? .camera : .photoLibrary
        picker.delegate = context.coordinator
        return picker
    }

    func updateUIViewController(_ controller: UIImagePickerController, context: Context) {}

    func makeCoordinator() -> Coordinator { Coordinator(self) }

    final class Coordinator: NSObject, UIImagePickerControllerDelegate, UINavigationControllerDelegate {
        let parent: CameraPicker
        init(_ parent: CameraPicker) { self.parent = parent }

        func imagePickerController(_ picker: UIImagePickerController,
                                   didFinishPickingMediaWithInfo info: [UIImagePickerController.InfoKey: Any]) {
            if let image = info[.originalImage] as? UIImage, let jpeg = image.jpegData(compressionQuality: 0.92) {
                let owner = parent.ownerId
                let here = parent.model.here
                let free = (try? URL(fileURLWithPath: NSHomeDirectory())
                    .resourceValues(forKeys: [.volumeAvailableCapacityForImportantUsageKey])
                    .volumeAvailableCapacityForImportantUsage).flatMap { $0 }.map { UInt64($0) }
                parent.model.call({
                    let photo = try AppModel.field.capturePhoto(ownerId: owner, bytes: jpeg, location: here, freeSpaceBytes: free)
                    // A visit's photo is attached to the visit as a finding.
                    if owner.hasPrefix("visit-") {
                        _ = try AppModel.field.addFinding(visitId: String(owner.dropFirst("visit-".count)),
                                                          text: "现场照片 / site photo", photos: [photo.hash], location: here)
                    }
                })
            }
            parent.dismiss()
        }
    }
}

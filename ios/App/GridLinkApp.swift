import BackgroundTasks
import GridLink
import SwiftUI

@main
struct GridLinkApp: App {
    @StateObject private var model = AppModel()

    init() {
        // Background sync: BGTaskScheduler wakes the app when the system allows; the blocking
        // sync runs on the task's own thread.
        BGTaskScheduler.shared.register(forTaskWithIdentifier: AppModel.syncTask, using: nil) { task in
            AppModel.handleBackgroundSync(task as! BGProcessingTask)
        }
    }

    var body: some Scene {
        WindowGroup {
            RootView().environmentObject(model)
                .onAppear { AppModel.scheduleBackgroundSync() }
        }
    }
}

import BackgroundTasks
import CoreLocation
import Foundation
import GridLink

/// The screens' state over the library. Library calls are blocking database calls: they run
/// on a background queue and publish on the main queue.
@MainActor
final class AppModel: ObservableObject {
    static let syncTask = "cn.gridlink.sync"
    static let serverUrl = Bundle.main.object(forInfoDictionaryKey: "GridLinkServerURL") as? String
        ?? "https://grid.wujiang.example.cn"
    /// One library per process, shared with the background task.
    nonisolated static let field: FieldApp = try! FieldApp.openDefault(serverUrl: serverUrl)

    @Published var session: Session? = AppModel.field.session()
    @Published var patrol: [PatrolItem] = []
    @Published var myCases: [CaseListItem] = []
    @Published var photoQueue: [PhotoView] = []
    /// Photos whose report was never saved: offered for discarding, not unsent work.
    @Published var orphanedPhotos: [PhotoView] = []
    /// What the server refused (with why) or could not take yet: the "needs attention" list.
    @Published var refusedEdits: [RejectedEditView] = []
    @Published var waitingItems: [RejectedItem] = []
    @Published var syncState = ""
    @Published var message: String?

    let location = CLLocationManager()
    var field: FieldApp { AppModel.field }

    /// Runs a library call off the main thread; an ApiError becomes the message.
    func call<T>(_ work: @escaping @Sendable () throws -> T, then: @escaping (T) -> Void = { _ in }) {
        DispatchQueue.global(qos: .userInitiated).async {
            let result = Result { try work() }
            DispatchQueue.main.async {
                switch result {
                case let .success(value): then(value)
                case let .failure(error as ApiError): self.message = error.detail
                case let .failure(error): self.message = error.localizedDescription
                }
            }
        }
    }

    /// The last fix, if location is allowed (a check-in without one is refused by the library).
    var here: Location? { location.location.map(Location.init) }

    func enroll(code: String) { call({ try AppModel.field.enroll(code: code) }) { self.session = $0; self.refresh() } }

    func registerCitizen() {
        call({ try AppModel.field.registerCitizen(name: nil, phone: nil) }) { self.session = $0; self.refresh() }
    }

    func refresh() {
        guard let session else { return }
        call({
            let f = AppModel.field
            let patrol: [PatrolItem] = try (session.role == .citizen ? [] : f.patrolList(gridId: nil, days: 30))
            let cases = try f.listCases(query: CaseListQuery(reportedByMe: session.role != .gridChief)).items
            return (patrol, cases, try f.photoQueue(), try f.rejectedEdits(), try f.rejectedItems())
        }) { patrol, cases, queue, refused, items in
            self.patrol = patrol
            self.myCases = cases
            self.photoQueue = queue.filter { !$0.orphaned }
            self.orphanedPhotos = queue.filter { $0.orphaned }
            self.refusedEdits = refused
            self.waitingItems = items.filter { $0.willRetry }
        }
    }

    /// "丢弃" on a photo whose report was never saved.
    func discardPhoto(_ hash: String) {
        call({ try AppModel.field.discardPhoto(hash: hash) }) { self.refresh() }
    }

    func syncNow() {
        syncState = "同步中… / syncing"
        call({ try AppModel.field.startSync(observer: SyncReporter(model: self)) })
    }

    // MARK: Background sync

    nonisolated static func scheduleBackgroundSync() {
        let request = BGProcessingTaskRequest(identifier: syncTask)
        request.requiresNetworkConnectivity = true
        request.earliestBeginDate = Date(timeIntervalSinceNow: 15 * 60)
        try? BGTaskScheduler.shared.submit(request)
    }

    nonisolated static func handleBackgroundSync(_ task: BGProcessingTask) {
        scheduleBackgroundSync()
        let work = Thread {
            let ok = (try? field.sync(observer: nil)) != nil
            task.setTaskCompleted(success: ok)
        }
        task.expirationHandler = { work.cancel() }
        work.start()
    }
}

/// Hears a sync on the library's network thread and hops to the main queue.
final class SyncReporter: SyncObserver, @unchecked Sendable {
    weak var model: AppModel?
    init(model: AppModel) { self.model = model }

    private func show(_ text: String) {
        DispatchQueue.main.async { self.model?.syncState = text }
    }

    func progress(progress: SyncProgressView) {
        show("已发送 \(progress.docsSent)，已接收 \(progress.docsReceived)")
    }

    func retrying(attempt: UInt32, delayMs: UInt64, message: String) {
        show("网络不稳定，\(delayMs / 1000) 秒后重试（第 \(attempt) 次）")
    }

    func finished(summary: SyncSummary) {
        var text = "同步完成：已接受 \(summary.docsAccepted) 项，上传照片 \(summary.photosUploaded) 张"
        if summary.docsRejected > 0 { text += "；\(summary.docsRejected) 项被拒绝，见“需要处理”" }
        if summary.docsDeferred > 0 { text += "；\(summary.docsDeferred) 项服务器暂未接收，稍后重发" }
        show(text)
        DispatchQueue.main.async { self.model?.refresh() }
    }

    func failed(error: ApiError) { show(error.detail) }
}

import CoreLocation
import Foundation

// Small conveniences over the generated bindings for iOS code; the bindings themselves
// (gridlink.swift) come from `cargo xtask ios`.

public extension Location {
    /// A Core Location fix as the library stores it (WGS-84, horizontal accuracy in metres).
    init(_ fix: CLLocation) {
        self.init(
            point: LatLon(lat: fix.coordinate.latitude, lon: fix.coordinate.longitude),
            accuracyM: max(fix.horizontalAccuracy, 0)
        )
    }
}

public extension ApiError {
    /// The message to show, whatever the variant.
    var detail: String {
        switch self {
        case let .Validation(detail), let .NotFound(detail), let .NotAllowed(detail),
             let .Network(detail), let .SignInAgain(detail), let .Storage(detail):
            return detail
        case let .StorageFull(detail, _, _), let .Rejected(_, detail):
            return detail
        }
    }
}

public extension FieldApp {
    /// Opens the library in the app's private storage with an installation id kept in the
    /// user defaults (it names the device, it is not a secret).
    static func openDefault(serverUrl: String) throws -> FieldApp {
        let support = try FileManager.default.url(
            for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
        let defaults = UserDefaults.standard
        let deviceId = defaults.string(forKey: "gridlink.device_id") ?? {
            let id = newId()
            defaults.set(id, forKey: "gridlink.device_id")
            return id
        }()
        return try FieldApp.open(config: AppConfig(
            databasePath: support.appendingPathComponent("gridlink.sqlite").path,
            photoDir: FileManager.default.temporaryDirectory.appendingPathComponent("camera").path,
            serverUrl: serverUrl,
            deviceId: deviceId,
            deviceName: "iOS",
            maxAttempts: 8
        ))
    }
}

import GridLink
import SwiftUI

struct RootView: View {
    @EnvironmentObject var model: AppModel

    var body: some View {
        Group {
            if model.session == nil { LoginView() } else { HomeView() }
        }
        .alert(model.message ?? "", isPresented: Binding(get: { model.message != nil }, set: { _ in model.message = nil })) {}
        .onAppear {
            model.location.requestWhenInUseAuthorization()
            model.location.startUpdatingLocation()
            model.refresh()
        }
    }
}

/// Sign-in by the one-time enrollment code; citizens register anonymously.
struct LoginView: View {
    @EnvironmentObject var model: AppModel
    @State private var code = ""

    var body: some View {
        Form {
            Section("网格通 / GridLink") {
                TextField("登记码 / Enrollment code", text: $code)
                Button("登录 / Sign in") { model.enroll(code: code) }.disabled(code.isEmpty)
            }
            Button("我是市民，随手拍 / I am a citizen") { model.registerCitizen() }
        }
    }
}

/// Today's patrol list, my cases, and sync status.
struct HomeView: View {
    @EnvironmentObject var model: AppModel

    var body: some View {
        TabView {
            NavigationView {
                List(model.patrol, id: \.code) { item in
                    NavigationLink(destination: AddressScreen(code: item.code)) {
                        VStack(alignment: .leading) {
                            Text(item.text)
                            Text(item.due ? "待巡查 / due" : "已巡查 / visited").font(.caption)
                        }
                    }
                }
                .navigationTitle("今日巡查")
            }
            .tabItem { Label("巡查", systemImage: "map") }

            NavigationView {
                List(model.myCases, id: \.id) { c in
                    VStack(alignment: .leading) {
                        Text(c.title)
                        Text(c.statusLabel).font(.caption)
                    }
                }
                .toolbar { NavigationLink("上报 / Report") { ReportScreen() } }
                .navigationTitle("我的案件")
            }
            .tabItem { Label("案件", systemImage: "tray") }

            List {
                Button("立即同步 / Sync now") { model.syncNow() }
                Text(model.syncState)
                Section("照片队列 / Photo queue (\(model.photoQueue.count))") {
                    ForEach(model.photoQueue.prefix(20), id: \.hash) { p in
                        Text("\(p.stateLabel) · \(String(p.hash.prefix(8)))")
                    }
                }
                if !model.orphanedPhotos.isEmpty {
                    Section("未保存上报的照片 / Photos of reports never saved") {
                        ForEach(model.orphanedPhotos, id: \.hash) { p in
                            HStack {
                                Text("\(String(p.hash.prefix(8))) · \(p.width)×\(p.height)")
                                Spacer()
                                Button("丢弃 / Discard", role: .destructive) { model.discardPhoto(p.hash) }
                            }
                        }
                    }
                }
                if !model.refusedEdits.isEmpty || !model.waitingItems.isEmpty {
                    Section("需要处理 / Needs attention") {
                        ForEach(Array(model.refusedEdits.prefix(50).enumerated()), id: \.offset) { _, r in
                            Text("未被接受 / not accepted: \(r.summary) · \(String(r.docId.prefix(8))) — \(r.message)")
                        }
                        ForEach(model.waitingItems, id: \.docId) { w in
                            Text("等待重发 / waiting to be sent again: \(String(w.docId.prefix(8))) — \(w.message)")
                        }
                    }
                }
            }
            .tabItem { Label("同步", systemImage: "arrow.triangle.2.circlepath") }
        }
    }
}

/// An address with its people and enterprises, and a checklist visit.
struct AddressScreen: View {
    @EnvironmentObject var model: AppModel
    let code: String
    @State private var address: AddressView?
    @State private var templates: [Template] = []
    @State private var visit: VisitView?
    @State private var camera = false

    var body: some View {
        List {
            if let a = address {
                Section(a.details.text) {
                    ForEach(a.people, id: \.personId) { p in Text("\(p.person.name) \(p.person.idNumber)") }
                    ForEach(a.enterprises, id: \.enterpriseId) { e in Text(e.enterprise.name) }
                }
            }
            if let v = visit {
                ForEach(v.template.items, id: \.id) { item in
                    ChecklistRow(visit: v, item: item) { visit = $0 }
                }
                Button("拍照 / Photo") { camera = true }
                Button("签退 / Check out") {
                    model.call({ try AppModel.field.finishVisit(visitId: v.visitId, location: nil) }) { visit = $0 }
                }
            } else {
                ForEach(templates, id: \.id) { t in
                    Button("\(t.title)（第 \(t.version) 版）") {
                        let here = model.here
                        model.call({
                            try AppModel.field.startVisit(visitId: newId(), addressCode: code, templateId: t.id,
                                                          location: here, maxDistanceM: nil)
                        }) { visit = $0 }
                    }
                }
            }
        }
        .sheet(isPresented: $camera) {
            if let v = visit { CameraPicker(ownerId: "visit-\(v.visitId)") }
        }
        .onAppear {
            model.call({ (try AppModel.field.address(code: code), try AppModel.field.templates()) }) {
                address = $0.0
                templates = $0.1
            }
        }
    }
}

struct ChecklistRow: View {
    @EnvironmentObject var model: AppModel
    let visit: VisitView
    let item: Item
    let updated: (VisitView) -> Void

    private func answer(_ value: Answer) {
        model.call({ try AppModel.field.answerVisit(visitId: visit.visitId, itemId: item.id, answer: value, location: nil) }) {
            updated($0.visit)
            if let c = $0.hazardCase { model.message = "已自动上报隐患案件：\(c.title)" }
        }
    }

    var body: some View {
        VStack(alignment: .leading) {
            Text(item.text + (item.required ? " *" : ""))
            switch item.kind {
            case .yesNo:
                HStack {
                    Button("是") { answer(.yesNo(true)) }
                    Button("否") { answer(.yesNo(false)) }
                }
            case let .choice(options):
                HStack { ForEach(options, id: \.self) { o in Button(o) { answer(.choice(o)) } } }
            default:
                Text("在详情中填写 / answer in detail").font(.caption)
            }
        }
    }
}

/// A case reported on the spot.
struct ReportScreen: View {
    @EnvironmentObject var model: AppModel
    @Environment(\.dismiss) var dismiss
    @State private var caseId = newId()
    @State private var title = ""
    @State private var category = Category.other
    @State private var camera = false

    var body: some View {
        Form {
            TextField("问题 / Problem", text: $title)
            Picker("类别 / Category", selection: $category) {
                ForEach(categories(), id: \.label) { c in Text(c.label).tag(c.category) }
            }
            Button("拍照 / Photo") { camera = true }
            Button("上报 / Report") {
                let (id, title, category, here) = (caseId, title, category, model.here)
                model.call({
                    let photos = try AppModel.field.photosOf(ownerId: id).map(\.hash)
                    return try AppModel.field.reportCase(input: NewCaseInput(
                        id: id, category: category, title: title, description: "", location: here,
                        addressId: nil, gridId: nil, photos: photos, priority: nil))
                }) { _ in dismiss() }
            }
        }
        .sheet(isPresented: $camera) { CameraPicker(ownerId: caseId) }
    }
}

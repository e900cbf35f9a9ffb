package cn.gridlink.app

import android.Manifest
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.*
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.*
import androidx.compose.runtime.*
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.res.stringResource
import androidx.compose.ui.unit.dp
import androidx.lifecycle.viewmodel.compose.viewModel
import androidx.navigation.compose.NavHost
import androidx.navigation.compose.composable
import androidx.navigation.compose.rememberNavController
import cn.gridlink.ffi.*
import kotlinx.coroutines.launch

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        registerForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) {}
            .launch(arrayOf(Manifest.permission.CAMERA, Manifest.permission.ACCESS_FINE_LOCATION))
        setContent { MaterialTheme { GridLinkScreens() } }
    }
}

@Composable
fun GridLinkScreens(model: AppModel = viewModel()) {
    val nav = rememberNavController()
    val snackbar = remember { SnackbarHostState() }
    LaunchedEffect(model.message) {
        model.message?.let { snackbar.showSnackbar(it); model.message = null }
    }
    LaunchedEffect(model.session) { model.refresh() }
    if (model.signInAgain) {
        AlertDialog(
            onDismissRequest = {},
            title = { Text("请重新登录 / Sign in again") },
            text = { Text("本机已被停用，未同步的工作无法再上传。/ This phone was revoked; unsent work can no longer be sent.") },
            confirmButton = {
                TextButton({ model.signOutDiscarding(); nav.navigate("login") }) { Text("重新登录 / Sign in") }
            },
        )
    }
    Scaffold(snackbarHost = { SnackbarHost(snackbar) }) { padding ->
        NavHost(nav, startDestination = if (model.session == null) "login" else "home", Modifier.padding(padding)) {
            composable("login") { LoginScreen(model) { nav.navigate("home") { popUpTo("login") { inclusive = true } } } }
            composable("home") { HomeScreen(model, openAddress = { nav.navigate("address/$it") }, report = { nav.navigate("report") }) }
            composable("address/{code}") { entry ->
                AddressScreen(model, entry.arguments?.getString("code").orEmpty(), camera = { owner -> nav.navigate("camera/$owner") })
            }
            composable("camera/{owner}") { entry ->
                CameraCapture(model, entry.arguments?.getString("owner").orEmpty()) { nav.popBackStack() }
            }
            composable("report") { ReportScreen(model, camera = { owner -> nav.navigate("camera/$owner") }) { nav.popBackStack() } }
        }
    }
}

/** Sign-in by the one-time enrollment code from the district; citizens register anonymously. */
@Composable
fun LoginScreen(model: AppModel, done: () -> Unit) {
    var code by remember { mutableStateOf("") }
    LaunchedEffect(model.session) { if (model.session != null) done() }
    Column(Modifier.padding(24.dp), verticalArrangement = Arrangement.spacedBy(16.dp)) {
        Text(stringResource(R.string.app_name), style = MaterialTheme.typography.headlineMedium)
        OutlinedTextField(code, { code = it }, label = { Text(stringResource(R.string.enrollment_code)) })
        Button(onClick = { model.enroll(code) }, enabled = code.isNotBlank()) { Text(stringResource(R.string.sign_in)) }
        TextButton(onClick = { model.registerCitizen() }) { Text(stringResource(R.string.citizen_register)) }
    }
}

/** Today's patrol list, my cases, and the sync status with the photo queue. */
@Composable
fun HomeScreen(model: AppModel, openAddress: (String) -> Unit, report: () -> Unit) {
    var tab by remember { mutableIntStateOf(0) }
    Column {
        TabRow(tab) {
            listOf(R.string.patrol, R.string.my_cases, R.string.sync).forEachIndexed { i, label ->
                Tab(tab == i, { tab = i }, text = { Text(stringResource(label)) })
            }
        }
        when (tab) {
            0 -> LazyColumn {
                items(model.patrol, key = { it.code }) { item ->
                    ListItem(
                        headlineContent = { Text(item.text) },
                        supportingContent = { Text(if (item.due) "待巡查 / due" else "已巡查 / visited") },
                        modifier = Modifier.clickable { openAddress(item.code) },
                    )
                }
            }
            1 -> Column {
                Button(onClick = report, modifier = Modifier.padding(8.dp)) { Text(stringResource(R.string.report_case)) }
                LazyColumn {
                    items(model.myCases, key = { it.id }) { case ->
                        ListItem(headlineContent = { Text(case.title) }, supportingContent = { Text(case.statusLabel) })
                    }
                }
            }
            else -> Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
                Button(onClick = { model.syncNow() }) { Text(stringResource(R.string.sync_now)) }
                Text(model.syncState)
                Text("照片队列 / photo queue: ${model.photoQueue.size}")
                model.photoQueue.take(20).forEach { Text("${it.stateLabel} · ${it.hash.take(8)}") }
                if (model.orphanedPhotos.isNotEmpty()) {
                    Text("未保存上报的照片 / photos of reports never saved (not sent, not counted)")
                    model.orphanedPhotos.forEach { photo ->
                        Row(verticalAlignment = Alignment.CenterVertically) {
                            Text("${photo.hash.take(8)} · ${photo.width}×${photo.height}", Modifier.weight(1f))
                            TextButton(onClick = { model.discardPhoto(photo.hash) }) { Text("丢弃 / discard") }
                        }
                    }
                }
                if (model.refusedEdits.isNotEmpty() || model.waitingItems.isNotEmpty()) {
                    Text("需要处理 / needs attention")
                    model.refusedEdits.take(50).forEach {
                        Text("未被接受 / not accepted: ${it.summary} · ${it.docId.take(8)} — ${it.message}")
                    }
                    model.waitingItems.forEach {
                        Text("等待重发 / waiting to be sent again: ${it.docId.take(8)} — ${it.message}")
                    }
                }
            }
        }
    }
}

/** An address with its people and enterprises, and a checklist visit on it. */
@Composable
fun AddressScreen(model: AppModel, code: String, camera: (String) -> Unit) {
    val context = LocalContext.current
    val scope = rememberCoroutineScope()
    var address by remember { mutableStateOf<AddressView?>(null) }
    var templates by remember { mutableStateOf<List<Template>>(emptyList()) }
    var visit by remember { mutableStateOf<VisitView?>(null) }
    LaunchedEffect(code) {
        model.call({ model.field.address(code) to model.field.templates() }) { (a, t) -> address = a; templates = t }
    }
    val a = address ?: return
    LazyColumn(Modifier.padding(16.dp)) {
        item { Text(a.details.text, style = MaterialTheme.typography.titleLarge) }
        items(a.people, key = { it.personId }) { p ->
            Text("${p.person.name} ${p.person.idNumber}" + (p.movedOut?.let { " · 已迁出 $it" } ?: ""))
        }
        items(a.enterprises, key = { it.enterpriseId }) { e -> Text("${e.enterprise.name} · ${e.enterprise.creditCode}") }
        val v = visit
        if (v == null) {
            items(templates, key = { it.id }) { t ->
                OutlinedButton(onClick = {
                    scope.launch {
                        val location = here(context)
                        model.call({ model.field.startVisit(newId(), code, t.id, location, null) }) { visit = it }
                    }
                }) { Text("${t.title}（第 ${t.version} 版）") }
            }
        } else {
            items(v.template.items, key = { it.id }) { item -> ChecklistItem(model, v, item) { visit = it } }
            item {
                Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    OutlinedButton(onClick = { camera("visit-${v.visitId}") }) { Text("拍照 / Photo") }
                    Button(onClick = { model.call({ model.field.finishVisit(v.visitId, null) }) { visit = it } }) {
                        Text("签退 / Check out")
                    }
                }
            }
        }
    }
}

@Composable
fun ChecklistItem(model: AppModel, visit: VisitView, item: Item, updated: (VisitView) -> Unit) {
    val answered = visit.answers.firstOrNull { it.itemId == item.id }?.answer
    var text by remember { mutableStateOf("") }
    fun answer(value: Answer) = model.call({ model.field.answerVisit(visit.visitId, item.id, value, null) }) { outcome ->
        updated(outcome.visit)
        outcome.hazardCase?.let { model.message = "已自动上报隐患案件：${it.title}" }
    }
    Column(Modifier.padding(vertical = 8.dp)) {
        Text(item.text + if (item.required) " *" else "")
        when (val kind = item.kind) {
            is ItemKind.YesNo -> Row {
                FilterChip(answered == Answer.YesNo(true), { answer(Answer.YesNo(true)) }, { Text("是") })
                FilterChip(answered == Answer.YesNo(false), { answer(Answer.YesNo(false)) }, { Text("否") })
            }
            is ItemKind.Choice -> Row {
                kind.options.forEach { o -> FilterChip(answered == Answer.Choice(o), { answer(Answer.Choice(o)) }, { Text(o) }) }
            }
            is ItemKind.Number -> Row {
                OutlinedTextField(text, { text = it }, label = { Text(kind.unit) })
                TextButton({ text.toDoubleOrNull()?.let { answer(Answer.Number(it)) } }) { Text("确定") }
            }
            is ItemKind.Text -> Row {
                OutlinedTextField(text, { text = it })
                TextButton({ answer(Answer.Text(text)) }) { Text("确定") }
            }
            is ItemKind.Photo -> Text("用下方“拍照”附照片 / attach with the Photo button")
        }
    }
}

/** A case reported on the spot: category, one line, photos, the current location. */
@Composable
fun ReportScreen(model: AppModel, camera: (String) -> Unit, done: () -> Unit) {
    val context = LocalContext.current
    val scope = rememberCoroutineScope()
    val caseId = rememberSaveable { newId() }
    var title by remember { mutableStateOf("") }
    var category by remember { mutableStateOf(Category.OTHER) }
    Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(12.dp)) {
        OutlinedTextField(title, { title = it }, label = { Text("问题 / Problem") })
        Row { categories().take(5).forEach { c -> FilterChip(category == c.category, { category = c.category }, { Text(c.label) }) } }
        OutlinedButton(onClick = { camera(caseId) }) { Text("拍照 / Photo") }
        Button(onClick = {
            scope.launch {
                val location = here(context)
                model.call({
                    val photos = model.field.photosOf(caseId).map { it.hash }
                    model.field.reportCase(NewCaseInput(id = caseId, category = category, title = title,
                        description = "", location = location, photos = photos))
                }) { done() }
            }
        }) { Text(stringResource(R.string.report_case)) }
    }
}

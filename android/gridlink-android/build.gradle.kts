// The library module: the Kotlin that uniffi generates and libgridlink_ffi.so for each ABI.
// `cargo xtask android` (at the repository root) fills both in:
//   src/main/kotlin/cn/gridlink/ffi/gridlink.kt   (generated, not committed)
//   src/main/jniLibs/<abi>/libgridlink_ffi.so     (built with cargo-ndk, not committed)
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "cn.gridlink.ffi"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    // The generated bindings call the library through JNA (the AAR carries its native part).
    api("net.java.dev.jna:jna:5.15.0@aar")
}
